"""The broker of the kafka-marked tests: one per session, started here and stopped at the
end (`DETECTOR_TEST_KAFKA` picks tansu or apache, see `brokers.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .brokers import BrokerUnavailableError, broker_kind, running_broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = broker_kind()
    try:
        with running_broker(kind, tmp_path_factory.mktemp(f"kafka-{kind}")) as bootstrap:
            yield bootstrap
    except BrokerUnavailableError as exc:
        pytest.fail(f"{kind} broker: {exc}")
