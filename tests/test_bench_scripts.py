"""The benchmark scripts run end to end through their command lines on a small mix (their
figures are BENCHMARKS.md's, so a broken script would leave the file stale unnoticed),
and the mix they generate is the same for a seed and repeats client addresses as real
logs do."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> str:
    """`python -m module args` from the checkout (bench/ is not an installed package)."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _generate(path: Path) -> Path:
    _run("bench.generate", "--events", "3000", "--seed", "7", "--out", str(path))
    return path


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("bench") / "mix.jsonl")


def test_the_same_seed_gives_the_same_mix(mix: Path, tmp_path: Path) -> None:
    assert _generate(tmp_path / "again.jsonl").read_bytes() == mix.read_bytes()


def test_client_addresses_repeat_per_workload_and_person(mix: Path) -> None:
    addresses: dict[str, Counter[str]] = {"kubernetes": Counter(), "github": Counter()}
    for line in mix.read_bytes().splitlines():
        record = orjson.loads(line)
        if record.get("kind") == "Event" and record.get("sourceIPs"):
            addresses["kubernetes"][record["sourceIPs"][0]] += 1
        elif record.get("actor_ip"):
            addresses["github"][record["actor_ip"]] += 1
    for source, seen in addresses.items():
        requests = sum(seen.values())
        assert requests > 100, source
        # one fresh address per request would give about as many as there are requests
        assert len(seen) < requests / 2, f"{source}: {len(seen)} addresses in {requests}"


def test_kubernetes_requests_carry_the_authorizer_annotations(mix: Path) -> None:
    """As the API server writes them at Metadata level: the decision on every request,
    and an RBAC reason naming the service account that was allowed."""
    allowed = 0
    for line in mix.read_bytes().splitlines():
        record = orjson.loads(line)
        if record.get("kind") != "Event" or "auditID" not in record:
            continue
        annotations = record["annotations"]
        assert annotations["authorization.k8s.io/decision"] in ("allow", "forbid")
        username = record["user"]["username"]
        reason = annotations.get("authorization.k8s.io/reason", "")
        if username.startswith("system:serviceaccount:") and reason.startswith("RBAC: allowed"):
            namespace, account = username.split(":")[2:]
            assert reason.endswith(f'to ServiceAccount "{account}/{namespace}"')
            allowed += 1
    assert allowed > 100


#: a small run that leaves BENCHMARKS.md alone
SMALL = ("--events", "3000", "--no-record")


def test_replay_throughput_runs_and_agrees_with_itself(mix: Path) -> None:
    before = (ROOT / "BENCHMARKS.md").read_bytes()
    out = _run("bench.replay_throughput", *SMALL, "--workers", "2", "--data", str(mix))
    assert "identical with the index off and with 2 workers" in out
    assert (ROOT / "BENCHMARKS.md").read_bytes() == before


def test_replay_reference_runs(mix: Path) -> None:
    out = _run("bench.replay_reference", *SMALL, "--workers", "2", "--data", str(mix))
    assert "| orjson.loads only (ceiling) | 3,000 |" in out
    assert "Engine against SQLite on the same rules" in out


def test_rule_noise_runs() -> None:
    assert "**total**" in _run("bench.rule_noise", *SMALL)
