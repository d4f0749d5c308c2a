"""The Dockerfile and docker-compose.yml, read as files (no container engine runs here):
what a user relies on when starting the stack."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from detector.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of each instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            steps.append((instruction.upper(), arguments.strip()))
    return steps


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_image_is_built_in_stages_from_a_pinned_slim_python() -> None:
    bases = [args.split()[0] for instruction, args in dockerfile() if instruction == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base


def test_dependencies_come_from_the_lock_with_hashes_and_nothing_else() -> None:
    runs = [args for instruction, args in dockerfile() if instruction == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert any("--require-hashes -r requirements.lock" in run for run in installs)
    assert all("--require-hashes" in run or "--no-deps" in run for run in installs)


def test_the_runtime_stage_runs_as_an_unprivileged_user_with_detector_as_entrypoint() -> None:
    steps = dockerfile()
    last_from = max(i for i, (instruction, _) in enumerate(steps) if instruction == "FROM")
    runtime = steps[last_from:]
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoint = [args for instruction, args in runtime if instruction == "ENTRYPOINT"]
    assert entrypoint == ['["detector"]']


def test_the_stack_has_kafka_elasticsearch_kibana_and_two_workers_each_with_a_healthcheck() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "elasticsearch", "kibana", "detector-1", "detector-2"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    for name in ("kafka", "elasticsearch", "kibana"):
        image = services[name]["image"]
        assert re.search(r":\d+\.\d+\.\d+$", image), image
    versions = {services[name]["image"].rsplit(":", 1)[1] for name in ("elasticsearch", "kibana")}
    assert len(versions) == 1  # Kibana speaks to its own Elasticsearch version
    for name in ("detector-1", "detector-2"):
        worker = services[name]
        assert worker["build"] == "."
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert worker["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
        mounts = [volume.split(":")[1] for volume in worker["volumes"]]
        assert "/etc/detector/detector.yml" in mounts and "/var/lib/detector" in mounts
        assert shlex.join(worker["command"]) == "run --config /etc/detector/detector.yml"
    states = {tuple(services[n]["volumes"]) for n in ("detector-1", "detector-2")}
    assert len(states) == 2  # each worker its own outbox and state


def test_the_workers_configuration_is_valid_and_sends_detections_to_elasticsearch() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "detector.yml").read_text())
    assert config["kafka"]["bootstrap"] == "kafka:9092"
    if "kafka" not in Settings.model_fields:  # the Kafka runtime's section
        config.pop("kafka")
    settings = Settings(**config)
    outputs = {output.name: output for output in settings.sinks.outputs}
    assert outputs["siem"].type == "elasticsearch"
    assert [str(h) for h in outputs["siem"].hosts] == ["http://elasticsearch:9200/"]  # type: ignore[union-attr]
    assert settings.rules.paths == [Path("/etc/detector/rules")]
