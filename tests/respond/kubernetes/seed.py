"""What the Kubernetes tests seed the stand-in with, and how they connect to it."""

from __future__ import annotations

import copy
from typing import Any

from detector.respond.actions.base import SystemConnection
from detector.respond.actions.kubernetes import ServiceAccountParams
from detector.secrets import SecretRef
from tests.respond.kubernetes.kubernetes_server import KubernetesServer

TOKEN = "eyJhbGciOiJSUzI1NiJ9.responder-token"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
SA = ServiceAccountParams(namespace="ci", name="deployer")


def connection(server: KubernetesServer, variable: str = "K8S_RESPONDER_TOKEN") -> SystemConnection:
    return SystemConnection(url=server.url, token=SecretRef(env=variable), timeout_seconds=5)


def binding(kind: str, name: str, subjects: list[dict[str, str]], namespace: str = "") -> Any:
    metadata = {
        "name": name,
        "labels": {"team": "ci"},
        **({"namespace": namespace} if namespace else {}),
    }
    role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    typed = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind}
    return typed | {"metadata": metadata, "roleRef": role, "subjects": subjects}


def sa_subject(name: str = "deployer", namespace: str | None = "ci") -> dict[str, str]:
    subject = {"kind": "ServiceAccount", "name": name}
    return subject | ({"namespace": namespace} if namespace else {})


def seed_service_account(cluster: KubernetesServer) -> dict[str, Any]:
    """The account, its grants in three forms, its legacy token, and look-alikes to leave alone."""
    alice = {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
    as_user = {
        "kind": "User",
        "name": "system:serviceaccount:ci:deployer",
        "apiGroup": "rbac.authorization.k8s.io",
    }
    objects = {
        "/api/v1/namespaces/ci/serviceaccounts/deployer": {
            "metadata": {"name": "deployer", "namespace": "ci"}
        },
        f"{RBAC}/namespaces/ci/rolebindings/deployer-edit": binding(
            "RoleBinding", "deployer-edit", [sa_subject(namespace=None)], "ci"
        ),
        f"{RBAC}/namespaces/ci/rolebindings/shared": binding(
            "RoleBinding", "shared", [alice, sa_subject()], "ci"
        ),
        f"{RBAC}/namespaces/prod/rolebindings/deployer-by-name": binding(
            "RoleBinding", "deployer-by-name", [as_user], "prod"
        ),
        f"{RBAC}/clusterrolebindings/deployer-view": binding(
            "ClusterRoleBinding", "deployer-view", [sa_subject()]
        ),
        f"{RBAC}/clusterrolebindings/other-deployer": binding(
            "ClusterRoleBinding", "other-deployer", [sa_subject(namespace="prod")]
        ),
        "/api/v1/namespaces/ci/secrets/deployer-token": {
            "metadata": {
                "name": "deployer-token",
                "namespace": "ci",
                "annotations": {"kubernetes.io/service-account.name": "deployer"},
            },
            "type": "kubernetes.io/service-account-token",
        },
        "/api/v1/namespaces/ci/secrets/builder-token": {
            "metadata": {
                "name": "builder-token",
                "namespace": "ci",
                "annotations": {"kubernetes.io/service-account.name": "builder"},
            },
            "type": "kubernetes.io/service-account-token",
        },
        "/api/v1/namespaces/ci/secrets/deployer-config": {
            "metadata": {"name": "deployer-config", "namespace": "ci"},
            "type": "Opaque",
        },
    }
    for path, obj in objects.items():
        cluster.put(path, obj)
    return copy.deepcopy(cluster.objects)


def same_object(before: dict[str, Any], after: dict[str, Any] | None) -> bool:
    """Equal but for what the server owns (a re-created object gets a new uid and version)."""
    owned = ("resourceVersion", "uid", "creationTimestamp")
    strip = lambda o: {**o, "metadata": {k: v for k, v in o["metadata"].items() if k not in owned}}  # noqa: E731
    return after is not None and strip(before) == strip(after)
