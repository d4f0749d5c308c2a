"""Kubernetes actions against a local API server stand-in checked against the Kubernetes OpenAPI."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detector.respond.actions.base import ActionError, SystemConnection
from detector.respond.actions.kubernetes import (
    GitOpsParams,
    KubernetesApi,
    LockServiceAccount,
    QuarantineParams,
    QuarantinePod,
    ScaleParams,
    ScaleToZero,
    SuspendGitOps,
)
from tests.respond.kubernetes.kubernetes_server import KubernetesServer
from tests.respond.kubernetes.seed import (
    RBAC,
    SA,
    binding,
    connection,
    same_object,
    seed_service_account,
)


async def test_lock_reports_group_bindings_it_leaves(cluster: KubernetesServer) -> None:
    seed_service_account(cluster)
    everyone = {
        "kind": "Group",
        "name": "system:serviceaccounts:ci",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    group_path = f"{RBAC}/clusterrolebindings/ci-accounts-view"
    cluster.put(group_path, binding("ClusterRoleBinding", "ci-accounts-view", [everyone]))

    outcome = await LockServiceAccount(connection(cluster)).execute(SA)

    assert "1 group binding(s) still grant it" in outcome.detail
    assert group_path in cluster.objects


async def test_an_unreachable_api_server_is_retryable() -> None:
    unreachable = SystemConnection(url="http://127.0.0.1:9", timeout_seconds=2)
    with pytest.raises(ActionError) as raised:
        await ScaleToZero(unreachable).execute(ScaleParams(namespace="ci", name="web"))
    assert raised.value.retryable is True


async def test_lock_service_account_then_undo_restores_exactly(cluster: KubernetesServer) -> None:
    before = seed_service_account(cluster)
    action = LockServiceAccount(connection(cluster))

    assert await action.verify(SA) is False
    outcome = await action.execute(SA)

    assert outcome.state == "done"
    gone = {
        f"{RBAC}/namespaces/ci/rolebindings/deployer-edit",
        f"{RBAC}/namespaces/prod/rolebindings/deployer-by-name",
        f"{RBAC}/clusterrolebindings/deployer-view",
        "/api/v1/namespaces/ci/secrets/deployer-token",
    }
    assert gone.isdisjoint(cluster.objects)
    shared = cluster.get(f"{RBAC}/namespaces/ci/rolebindings/shared")
    assert shared is not None and [s["name"] for s in shared["subjects"]] == ["alice"]
    account = cluster.get("/api/v1/namespaces/ci/serviceaccounts/deployer")
    assert account is not None and account["automountServiceAccountToken"] is False
    for untouched in ("clusterrolebindings/other-deployer",):
        assert same_object(before[f"{RBAC}/{untouched}"], cluster.get(f"{RBAC}/{untouched}"))
    assert "/api/v1/namespaces/ci/secrets/builder-token" in cluster.objects
    assert "/api/v1/namespaces/ci/secrets/deployer-config" in cluster.objects
    assert await action.verify(SA) is True
    assert (await action.execute(SA)).state == "already_done"

    undone = await action.undo(SA, outcome)

    assert undone.state == "done"
    for path, obj in before.items():
        if "/rolebindings/" in path or "/clusterrolebindings/" in path:
            assert same_object(obj, cluster.get(path)), path
    account = cluster.get("/api/v1/namespaces/ci/serviceaccounts/deployer")
    assert account is not None and "automountServiceAccountToken" not in account
    assert ("POST", f"{RBAC}/clusterrolebindings") in cluster.requests
    assert await action.verify(SA) is False  # the legacy token Secret stays deleted
    assert "/api/v1/namespaces/ci/secrets/deployer-token" not in cluster.objects


async def test_lock_keeps_an_explicit_automount_true_for_undo(cluster: KubernetesServer) -> None:
    cluster.put(
        "/api/v1/namespaces/ci/serviceaccounts/deployer",
        {"metadata": {"name": "deployer", "namespace": "ci"}, "automountServiceAccountToken": True},
    )
    action = LockServiceAccount(connection(cluster))
    outcome = await action.execute(SA)
    assert outcome.state == "done"
    await action.undo(SA, outcome)
    account = cluster.get("/api/v1/namespaces/ci/serviceaccounts/deployer")
    assert account is not None and account["automountServiceAccountToken"] is True


async def test_lock_of_an_account_without_grants_is_already_done(cluster: KubernetesServer) -> None:
    cluster.put(
        "/api/v1/namespaces/ci/serviceaccounts/deployer",
        {
            "metadata": {"name": "deployer", "namespace": "ci"},
            "automountServiceAccountToken": False,
        },
    )
    outcome = await LockServiceAccount(connection(cluster)).execute(SA)
    assert outcome.state == "already_done"
    assert not any(method in ("PATCH", "DELETE") for method, _ in cluster.requests)


async def test_undo_refused_by_rbac_escalation_is_a_clear_error(cluster: KubernetesServer) -> None:
    seed_service_account(cluster)
    action = LockServiceAccount(connection(cluster))
    outcome = await action.execute(SA)
    cluster.fail_next = [(403, {})]  # create without `bind` on the role

    with pytest.raises(ActionError) as raised:
        await action.undo(SA, outcome)

    assert raised.value.status == 403
    assert raised.value.retryable is False
    assert "RBAC" in str(raised.value)


async def test_a_binding_changed_meanwhile_is_a_conflict(cluster: KubernetesServer) -> None:
    seed_service_account(cluster)
    action = LockServiceAccount(connection(cluster))
    shared_path = f"{RBAC}/namespaces/ci/rolebindings/shared"
    listed_bindings = action._bindings

    async def list_then_someone_edits(k8s: KubernetesApi) -> list[dict[str, Any]]:
        listed = await listed_bindings(k8s)
        cluster.put(shared_path, cluster.objects[shared_path])  # a new resourceVersion
        return listed

    action._bindings = list_then_someone_edits  # type: ignore[method-assign]
    with pytest.raises(ActionError) as raised:
        await action.execute(SA)

    assert raised.value.status == 409
    assert raised.value.retryable is False
    assert len(cluster.objects[shared_path]["subjects"]) == 2


def seed_pod(cluster: KubernetesServer, name: str, labels: dict[str, str]) -> None:
    cluster.put(
        f"/api/v1/namespaces/ci/pods/{name}",
        {
            "metadata": {"name": name, "namespace": "ci", "labels": dict(labels)},
            "spec": {"containers": [{"name": "runner", "image": "runner:1"}]},
        },
    )


async def test_quarantine_pod_then_undo(cluster: KubernetesServer) -> None:
    seed_pod(cluster, "runner-abc", {"app": "runner"})
    seed_pod(cluster, "runner-def", {"app": "runner"})
    action = QuarantinePod(connection(cluster))
    params = QuarantineParams(namespace="ci", pod="runner-abc")

    outcome = await action.execute(params)

    assert outcome.state == "done"
    pod = cluster.get("/api/v1/namespaces/ci/pods/runner-abc")
    assert pod is not None and pod["metadata"]["labels"] == {
        "app": "runner",
        "detector.quarantine": "true",
    }
    other = cluster.get("/api/v1/namespaces/ci/pods/runner-def")
    assert other is not None and other["metadata"]["labels"] == {"app": "runner"}
    policy = cluster.get(
        "/apis/networking.k8s.io/v1/namespaces/ci/networkpolicies/detector-quarantine"
    )
    assert policy is not None
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"detector.quarantine": "true"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    assert await action.verify(params) is True
    assert (await action.execute(params)).state == "already_done"

    await action.undo(params, outcome)

    pod = cluster.get("/api/v1/namespaces/ci/pods/runner-abc")
    assert pod is not None and pod["metadata"]["labels"] == {"app": "runner"}
    assert (
        "/apis/networking.k8s.io/v1/namespaces/ci/networkpolicies/detector-quarantine"
        not in cluster.objects
    )
    assert await action.verify(params) is False


async def test_undo_keeps_the_policy_while_another_pod_is_quarantined(
    cluster: KubernetesServer,
) -> None:
    seed_pod(cluster, "a", {})
    seed_pod(cluster, "b", {})
    action = QuarantinePod(connection(cluster))
    first = await action.execute(QuarantineParams(namespace="ci", pod="a"))
    second = await action.execute(QuarantineParams(namespace="ci", pod="b"))
    assert first.state == second.state == "done"

    await action.undo(QuarantineParams(namespace="ci", pod="a"), first)

    assert (
        "/apis/networking.k8s.io/v1/namespaces/ci/networkpolicies/detector-quarantine"
        in cluster.objects
    )
    assert await action.verify(QuarantineParams(namespace="ci", pod="b")) is True


async def test_quarantine_of_a_missing_pod_is_a_clear_error(cluster: KubernetesServer) -> None:
    with pytest.raises(ActionError) as raised:
        await QuarantinePod(connection(cluster)).execute(
            QuarantineParams(namespace="ci", pod="gone")
        )
    assert raised.value.status == 404
    assert raised.value.retryable is False


@pytest.mark.parametrize(
    ("kind", "plural"), [("Deployment", "deployments"), ("StatefulSet", "statefulsets")]
)
async def test_scale_to_zero_then_undo_restores_the_count(
    cluster: KubernetesServer, kind: str, plural: str
) -> None:
    path = f"/apis/apps/v1/namespaces/ci/{plural}/web"
    cluster.put(
        path,
        {
            "metadata": {"name": "web", "namespace": "ci"},
            "spec": {"replicas": 3},
            "status": {"replicas": 3},
        },
    )
    action = ScaleToZero(connection(cluster))
    params = ScaleParams(namespace="ci", name="web", kind=kind)  # type: ignore[arg-type]

    outcome = await action.execute(params)

    assert outcome.state == "done"
    assert outcome.undo_state == {"replicas": 3}
    assert cluster.objects[path]["spec"]["replicas"] == 0
    assert await action.verify(params) is True
    assert (await action.execute(params)).state == "already_done"
    await action.undo(params, outcome)
    assert cluster.objects[path]["spec"]["replicas"] == 3
    assert await action.verify(params) is False
    assert ("PATCH", f"{path}/scale") in cluster.requests


@pytest.mark.parametrize(
    ("status", "headers", "retryable"),
    [
        (429, {"Retry-After": "5"}, True),
        (500, {}, True),
        (503, {}, True),
        (409, {}, False),
        (422, {}, False),
        (403, {}, False),
    ],
)
async def test_errors_map_to_retryable_or_not(
    cluster: KubernetesServer, status: int, headers: dict[str, str], retryable: bool
) -> None:
    path = "/apis/apps/v1/namespaces/ci/deployments/web"
    cluster.put(path, {"metadata": {"name": "web", "namespace": "ci"}, "spec": {"replicas": 2}})
    cluster.fail_next = [(status, headers)]
    with pytest.raises(ActionError) as raised:
        await ScaleToZero(connection(cluster)).execute(ScaleParams(namespace="ci", name="web"))
    assert raised.value.status == status
    assert raised.value.retryable is retryable
    assert raised.value.retry_after == (5 if "Retry-After" in headers else None)
    assert cluster.objects[path]["spec"]["replicas"] == 2


async def test_a_refused_token_is_never_shown(
    cluster: KubernetesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_WRONG", "wrong-token-value")
    with pytest.raises(ActionError) as raised:
        await ScaleToZero(connection(cluster, "K8S_WRONG")).execute(
            ScaleParams(namespace="ci", name="web")
        )
    assert raised.value.status == 401
    assert "wrong-token-value" not in str(raised.value)


FLUX = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"
HELM = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/web/helmreleases/web"
ARGO = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/web"


def seed_gitops(cluster: KubernetesServer) -> dict[str, Any]:
    cluster.put(
        FLUX,
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps", "namespace": "flux-system"},
            "spec": {
                "interval": "10m",
                "prune": True,
                "path": "./apps",
                "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            },
        },
    )
    cluster.put(
        HELM,
        {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "web", "namespace": "web"},
            "spec": {"interval": "5m", "suspend": False},
        },
    )
    cluster.put(
        ARGO,
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"},
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": ["CreateNamespace=true"],
                },
            },
        },
    )
    return copy.deepcopy(cluster.objects)


@pytest.mark.parametrize(
    ("params", "path"),
    [
        (GitOpsParams(namespace="flux-system", name="apps", kind="Kustomization"), FLUX),
        (GitOpsParams(namespace="web", name="web", kind="HelmRelease"), HELM),
        (GitOpsParams(namespace="argocd", name="web", kind="Application"), ARGO),
    ],
)
async def test_suspend_gitops_then_undo_restores_exactly(
    cluster: KubernetesServer, params: GitOpsParams, path: str
) -> None:
    before = seed_gitops(cluster)
    action = SuspendGitOps(connection(cluster))

    outcome = await action.execute(params)

    assert outcome.state == "done"
    spec = cluster.objects[path]["spec"]
    if params.kind == "Application":
        assert "automated" not in spec["syncPolicy"]
        assert spec["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
    else:
        assert spec["suspend"] is True
    assert await action.verify(params) is True
    assert (await action.execute(params)).state == "already_done"

    await action.undo(params, outcome)

    assert same_object(before[path], cluster.objects[path])
    assert await action.verify(params) is False


async def test_the_server_rejects_what_the_description_does_not_allow(
    cluster: KubernetesServer,
) -> None:
    """The stand-in is a real check: a strategic merge patch on a custom resource is refused."""
    seed_gitops(cluster)
    async with KubernetesApi(connection(cluster)) as k8s:
        answer = await k8s.custom.patch_namespaced_custom_object(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "flux-system",
            "kustomizations",
            "apps",
            {"spec": {"suspend": True}},
            _content_type="application/strategic-merge-patch+json",
            _preload_content=False,
        )
        assert answer.status == 415
        answer.release()
        created = await k8s.rbac.create_cluster_role_binding(
            {
                "metadata": {"name": "x", "resourceVersion": "7"},
                "roleRef": {
                    "kind": "ClusterRole",
                    "name": "edit",
                    "apiGroup": "rbac.authorization.k8s.io",
                },
            },
            _preload_content=False,
        )
        assert created.status == 400
        created.release()
    assert len(cluster.violations) == 2
    cluster.violations.clear()
