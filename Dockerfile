# The detector image: the locked dependencies (hash-checked) in a virtual environment
# built in a first stage, copied into a slim runtime that runs as an unprivileged user.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc and the C library headers for mypyc, which compiles the hot path (setup.py)
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/detector
WORKDIR /src
COPY requirements.lock ./
RUN /opt/detector/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY detector ./detector
RUN /opt/detector/bin/pip install --no-deps --no-build-isolation .

FROM python:3.11.14-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/detector --create-home detector
COPY --from=build /opt/detector /opt/detector
COPY rules /etc/detector/rules
ENV PATH=/opt/detector/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /var/lib/detector
USER detector:detector
EXPOSE 8443 9464
ENTRYPOINT ["detector"]
CMD ["run", "--config", "/etc/detector/detector.yml"]
