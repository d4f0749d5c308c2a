"""What the shipped Kubernetes playbooks plan for the records their rules fire on: the GitOps
object is suspended before a scale-down when the record names it, and a pod someone ran
commands in is quarantined."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from detector.detections import Detection, RuleRef
from detector.normalize.kubernetes import KubernetesAuditNormalizer
from detector.respond.audit import ActionRecord, AuditTrail
from detector.respond.playbooks import load_playbooks
from detector.respond.responder import Responder
from detector.respond.settings import RespondersSettings
from detector.respond.state import StateStore
from detector.single_event import evidence_of

ROOT = Path(__file__).resolve().parents[3]
IMAGE_SWAP = RuleRef(
    id="90ccfac6-9868-45d5-85c2-9a4350d033e9",
    title="Image Pushed Outside CI, Then Deployed To Kubernetes",
    level="critical",
)
POD_EXEC = RuleRef(
    id="37522223-0e1d-438c-9068-d2c2cec8643e",
    title="Kubernetes Command Executed in a Pod",
    level="medium",
)


def _argo_rollout() -> dict[str, Any]:
    """The Request-level patch from Argo CD that replay/03-image-swap ends with."""
    logs = ROOT / "replay" / "03-image-swap" / "logs" / "kubernetes-audit.jsonl.gz"
    with gzip.open(logs) as lines:
        for line in lines:
            record: dict[str, Any] = orjson.loads(line)
            if record["auditID"] == "b7e2c1d0-9a8f-4e3d-8c2b-1a0f9e8d7c6b":
                return record
    raise AssertionError("the scenario's rollout is missing")


def _with_labels(labels: dict[str, str]) -> dict[str, Any]:
    """The same rollout logged at the RequestResponse level, by a workload with `labels`."""
    record = copy.deepcopy(_argo_rollout())
    record["level"] = "RequestResponse"
    record["responseObject"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout-api", "namespace": "payments-prod", "labels": labels},
    }
    return record


async def _plan(tmp_path: Path, rule: RuleRef, record: dict[str, Any]) -> list[ActionRecord]:
    event = KubernetesAuditNormalizer().normalize(record)
    detection = Detection(
        id="det-1",
        timestamp=event.timestamp,
        rule=rule,
        evidence=[evidence_of(event)],
        message=rule.title,
    )
    loaded = load_playbooks([ROOT / "playbooks"])
    assert loaded.problems == []
    responder = Responder(
        RespondersSettings(audit=tmp_path / "actions.jsonl"),
        loaded.playbooks,
        store=StateStore(None),
        audit=AuditTrail(tmp_path / "actions.jsonl"),
        dry=True,
    )
    try:
        return await responder.handle(detection, event)
    finally:
        responder.close()


def _steps(records: list[ActionRecord]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.action, r.status, r.parameters) for r in records]


@pytest.mark.parametrize(
    ("labels", "gitops"),
    [
        (
            {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
            {"kind": "Kustomization", "namespace": "flux-system", "name": "apps", "version": None},
        ),
        (
            {
                "helm.toolkit.fluxcd.io/name": "checkout",
                "helm.toolkit.fluxcd.io/namespace": "payments",
            },
            {"kind": "HelmRelease", "namespace": "payments", "name": "checkout", "version": None},
        ),
    ],
)
async def test_a_flux_workload_has_its_gitops_object_suspended_before_the_scale_down(
    tmp_path: Path, labels: dict[str, str], gitops: dict[str, str]
) -> None:
    records = await _plan(tmp_path, IMAGE_SWAP, _with_labels(labels))

    assert _steps(records) == [
        ("kubernetes.suspend_gitops", "planned", gitops),
        (
            "kubernetes.scale_to_zero",
            "planned",
            {"namespace": "payments-prod", "name": "checkout-api", "kind": "Deployment"},
        ),
    ]
    assert [r.would_run for r in records] == ["approve", "approve"]


async def test_without_the_gitops_labels_the_suspension_fails_uncalled_and_the_scale_down_stays(
    tmp_path: Path,
) -> None:
    records = await _plan(tmp_path, IMAGE_SWAP, _argo_rollout())

    assert [(r.action, r.status) for r in records] == [
        ("kubernetes.suspend_gitops", "failed"),
        ("kubernetes.scale_to_zero", "planned"),
    ]
    assert records[0].reason.startswith("parameters:")
    assert "responseObject" in records[0].reason


async def test_a_shell_in_a_pod_plans_its_quarantine(tmp_path: Path) -> None:
    tests = ROOT / "rules" / "kubernetes" / "k8s_pod_exec.tests.yml"
    shell = yaml.safe_load(tests.read_text(encoding="utf-8"))["match"][0]

    records = await _plan(tmp_path, POD_EXEC, shell)

    assert _steps(records) == [
        (
            "kubernetes.quarantine_pod",
            "planned",
            {
                "namespace": "shop",
                "pod": "web-7d4b9c6f5-x2k8f",
                "label": "detector.quarantine",
                "policy_name": "detector-quarantine",
            },
        )
    ]
    assert records[0].would_run == "approve"
