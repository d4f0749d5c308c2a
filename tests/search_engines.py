"""Real Elasticsearch and OpenSearch nodes for tests, one of each per session (fixtures).

`make search-engines` fetches the integration-test distributions (no bundled JDK, no
plugins) from Maven Central into `~/.cache/detector-test/`; each fixture unpacks its
zip into a fresh directory, starts a single node on a free 127.0.0.1 port with a 512 MB
heap and security off, waits for the cluster to be at least yellow, and stops the node
at the end of the session. Both refuse to run as root, so under root the node runs as
`nobody`. Without the zip the tests skip and say which make target fetches it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import urllib3

CACHE = Path(os.environ.get("DETECTOR_TEST_CACHE", Path.home() / ".cache" / "detector-test"))
STARTUP_DEADLINE = 180.0


@dataclass(frozen=True)
class Engine:
    kind: str  # elasticsearch | opensearch
    url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java_home(kind: str) -> str:
    """JAVA_HOME for the node: $DETECTOR_<KIND>_JAVA_HOME, $JAVA_HOME, or the `java` on PATH."""
    chosen = os.environ.get(f"DETECTOR_{kind.upper()}_JAVA_HOME") or os.environ.get("JAVA_HOME")
    if chosen:
        return chosen
    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH for the search engine")
    return str(Path(java).resolve().parent.parent)


def _health(url: str) -> str | None:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=2.0), retries=False)
    try:
        response = http.request("GET", f"{url}/_cluster/health")
    except urllib3.exceptions.HTTPError:
        return None
    if response.status != 200:
        return None
    return str(orjson.loads(response.data).get("status"))


def _start(kind: str) -> Iterator[Engine]:
    archives = sorted(CACHE.glob(f"{kind}-*.zip"))
    if not archives:
        pytest.skip(f"no {kind} distribution in {CACHE}: run `make search-engines`")
    archive = archives[-1]
    home = Path(tempfile.mkdtemp(prefix=f"detector-{kind}-"))
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(home)
    root = next(home.iterdir())
    for script in (root / "bin").iterdir():
        script.chmod(0o755)
    port = _free_port()
    java_home = _java_home(kind)
    env = {
        **os.environ,
        "ES_JAVA_HOME": java_home,
        "OPENSEARCH_JAVA_HOME": java_home,
        "ES_JAVA_OPTS": "-Xms512m -Xmx512m",
        "OPENSEARCH_JAVA_OPTS": "-Xms512m -Xmx512m",
    }
    env.pop("JAVA_HOME", None)
    settings = [
        "discovery.type=single-node",
        "network.host=127.0.0.1",
        f"http.port={port}",
        f"transport.port={_free_port()}",
        "cluster.routing.allocation.disk.threshold_enabled=false",
        "action.destructive_requires_name=false",
    ]
    if kind == "elasticsearch":
        settings += ["xpack.security.enabled=false", "xpack.ml.enabled=false"]
    command = [str(root / "bin" / kind)]
    for setting in settings:
        command += ["-E", setting]
    if os.geteuid() == 0:  # both refuse root: run the node as nobody
        shutil.chown(home, "nobody")
        home.chmod(0o755)
        for path in root.rglob("*"):
            os.chown(path, 65534, -1, follow_symlinks=False)
        os.chown(root, 65534, -1)
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    log = (home / "node.log").open("wb")
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while _health(url) not in ("yellow", "green"):
            if process.poll() is not None:
                tail = (home / "node.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"{kind} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                pytest.fail(f"{kind} not healthy within {STARTUP_DEADLINE:g}s")
            time.sleep(0.5)
        yield Engine(kind, url)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def elasticsearch() -> Iterator[Engine]:
    yield from _start("elasticsearch")


@pytest.fixture(scope="session")
def opensearch() -> Iterator[Engine]:
    yield from _start("opensearch")


@pytest.fixture(scope="session", params=["elasticsearch", "opensearch"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test using it runs against both engines."""
    found: Engine = request.getfixturevalue(request.param)
    return found
