"""`detector drill` against the real service: a shipped scenario sent through every intake
route it needs, shifted to end now, and every expected detection reported as arrived."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from detector.config import DEFAULT_RULES
from tests.e2e.service_helpers import DetectorService, service_config
from tests.e2e.test_replay_scenarios import ROOT
from tests.e2e.test_run_service import Pki

SCENARIO = ROOT / "replay" / "01-stolen-github-token"
#: the routes the scenario's sources arrive on; the generic ones signed Standard Webhooks
INTAKE = {
    "kubernetes": {"secret": {"env": "K8S_TOKEN"}},
    "gitlab": {"secret": {"env": "GITLAB_TOKEN"}},
    "github": {"secret": {"env": "GITHUB_SECRET"}},
    "generic": {
        source: {"secret": {"env": "BITBUCKET_WHSEC"}}
        for source in ("github", "registry", "cloudtrail")
    },
}
TOKENS = ("kubernetes=K8S_TOKEN", "gitlab=GITLAB_TOKEN", "github=GITHUB_SECRET", "BITBUCKET_WHSEC")


async def drill(service: DetectorService, scenario: Path, *args: str) -> tuple[int, str, str]:
    tokens = [option for token in TOKENS for option in ("--token-env", token)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "detector", "drill", str(scenario), "--to", service.base,
        *tokens, *args,
        cwd=ROOT, env={**service.environ, "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def drill_against_the_service(
    tmp_path: Path,
    scenario: Path,
    intake: dict[str, Any],
    *args: str,
    ready: dict[str, Any] | None = None,
    workers: int = 1,
) -> None:
    """Start `detector run` with `intake`, drill `scenario` against it, and check that
    every expected detection is reported as arrived and was written with shifted times."""
    alerts = tmp_path / "alerts.jsonl"
    outputs = [{"name": "siem", "type": "file", "path": str(alerts)}]
    config = service_config(tmp_path, outputs, intake)
    config["rules"] = {"paths": [str(ROOT / DEFAULT_RULES)]}
    config["service"]["workers"] = workers
    service = DetectorService(config, tmp_path)
    service.start()
    try:
        async with aiohttp.ClientSession() as client:
            await service.ready(client, **(ready or {}))
        staged = Path(config["service"]["staging_output"])
        code, table, summary = await drill(
            service, scenario, "--watch-output", str(alerts), "--watch-output", str(staged),
            "--deadline", "60", *args,
        )  # fmt: skip
    finally:
        assert await service.stop() == 0, service.output()
    expected = [
        orjson.loads(line) for line in (scenario / "expected.jsonl").read_bytes().splitlines()
    ]
    assert code == 0, summary + table + service.output()[-3000:]
    assert f"{len(expected)} of {len(expected)} expected detections arrived" in summary
    assert "NO" not in table
    for title in {line["title"] for line in expected}:
        assert title in table
    # the service saw shifted times: every detection is from the last days, not 2025
    produced = [
        orjson.loads(line) for path in (alerts, staged) for line in path.read_bytes().splitlines()
    ]
    assert len(produced) == len(expected)
    assert all(not detection["@timestamp"].startswith("2025") for detection in produced)


@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "two worker processes"])
async def test_every_expected_detection_of_a_scenario_arrives(tmp_path: Path, workers: int) -> None:
    """Single-event detections and correlations alike, also with the records' work in
    worker processes."""
    await drill_against_the_service(tmp_path, SCENARIO, INTAKE, workers=workers)


async def test_a_drill_over_mutual_tls(tmp_path: Path) -> None:
    """The service's own CA, and the client certificate its Kubernetes route requires."""
    pki = Pki(tmp_path)
    pki.server_ca.cert_pem.write_to_path(tmp_path / "service-ca.pem")
    client = pki.client_ca.issue_cert("kube-apiserver-audit")
    client.private_key_and_cert_chain_pem.write_to_path(tmp_path / "client.pem")
    kubernetes = {**INTAKE["kubernetes"], "require_client_cert": True}
    await drill_against_the_service(
        tmp_path,
        ROOT / "replay" / "04-deployment-hijack",
        {**INTAKE, "kubernetes": kubernetes, "tls": pki.tls},
        "--ca-file", str(tmp_path / "service-ca.pem"),
        "--client-cert", str(tmp_path / "client.pem"),
        ready={"ssl": pki.client()},
    )  # fmt: skip


async def test_a_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    environ = {key: value for key, value in os.environ.items() if key != "NOT_SET_ANYWHERE"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "detector", "drill", str(SCENARIO), "--to", "http://127.0.0.1:9",
        "--token-env", "NOT_SET_ANYWHERE", "--watch-output", str(tmp_path / "out.jsonl"),
        cwd=ROOT, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "no secret for intake route" in stderr.decode()
    assert "$NOT_SET_ANYWHERE is empty or unset" in stderr.decode()
