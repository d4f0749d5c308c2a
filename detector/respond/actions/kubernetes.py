"""Kubernetes response actions: lock a ServiceAccount, quarantine a pod, scale down, pause GitOps.

Calls go through kubernetes-asyncio's typed operations (auth, TLS, paths, content types) but
read and write raw JSON (`_preload_content=False`): the generated models drop fields they do
not know, and a backup that is restored later must keep every field the server returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Literal

import orjson
from kubernetes_asyncio import client
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from detector.respond.actions.base import (
    Action,
    ActionError,
    ActionOutcome,
    SystemConnection,
    Target,
    register,
)
from detector.respond.actions.errors import aiohttp_failures, status_error

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
RBAC_GROUP = "rbac.authorization.k8s.io"
# Server-owned metadata a re-created object must not carry.
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "selfLink")
_MEANING = {
    401: "the Kubernetes token is not accepted",
    403: "RBAC does not allow this call for the responder's identity",
    404: "no such object",
    409: "the object changed or already exists (conflict)",
    415: "the server does not accept this patch type for the object",
    422: "the server rejected the object as invalid",
}


class KubernetesApi:
    """An authenticated kubernetes-asyncio client built from a SystemConnection (no kubeconfig)."""

    def __init__(self, connection: SystemConnection) -> None:
        config = client.Configuration(host=connection.url.rstrip("/"))
        if connection.token is not None:
            config.api_key = {"BearerToken": connection.token.read()}
            config.api_key_prefix = {"BearerToken": "Bearer"}
        if isinstance(connection.verify_tls, str):
            config.ssl_ca_cert = connection.verify_tls
        else:
            config.verify_ssl = connection.verify_tls
        self._timeout = connection.timeout_seconds
        self.api = client.ApiClient(configuration=config)
        self.core = client.CoreV1Api(self.api)
        self.rbac = client.RbacAuthorizationV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.networking = client.NetworkingV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    async def __aenter__(self) -> KubernetesApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.api.close()

    def options(self, content_type: str | None = None) -> dict[str, Any]:
        """Keyword arguments every call takes: raw JSON back, the timeout, a patch type."""
        extra = {"_content_type": content_type} if content_type else {}
        return {"_preload_content": False, "_request_timeout": self._timeout, **extra}

    async def call(
        self, what: str, request: Awaitable[Any], *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """Await one call; the JSON answer, None for a 404 when `missing_ok`, else ActionError."""
        with aiohttp_failures("the Kubernetes API server", what):
            response = await request
            try:
                status, body, headers = response.status, await response.read(), response.headers
            finally:
                response.release()
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            raise _error(what, status, body, headers)
        data = orjson.loads(body) if body else {}
        return data if isinstance(data, dict) else {}


def _error(what: str, status: int, body: bytes, headers: Mapping[str, str]) -> ActionError:
    """A Status answer becomes a message with the server's reason, never request headers.
    A 429 (API Priority and Fairness, say) carries the wait it asks for in Retry-After."""
    try:
        reason = str(orjson.loads(body).get("message", ""))
    except (orjson.JSONDecodeError, AttributeError):
        reason = ""
    meaning = _MEANING.get(status, "the API server answered with an error")
    return status_error(
        f"Kubernetes refused to {what} (HTTP {status}): {meaning}"
        + (f": {reason[:300]}" if reason else ""),
        status,
        headers,
    )


def restorable(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """A copy of an object that can be POSTed again: no server-owned metadata."""
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in SERVER_FIELDS}
    return {**obj, "apiVersion": api_version, "kind": kind, "metadata": metadata}


def _binding_request(
    k8s: KubernetesApi,
    verb: Literal["read", "delete", "patch", "create"],
    binding: dict[str, Any],
    body: dict[str, Any] | None = None,
) -> Awaitable[Any]:
    """One RBAC call on a RoleBinding (namespaced) or ClusterRoleBinding; patches merge."""
    kind, metadata = binding["kind"], binding["metadata"]
    scoped = kind == "RoleBinding"
    method = getattr(k8s.rbac, f"{verb}_{'namespaced' if scoped else 'cluster'}_role_binding")
    if verb == "create":
        args = [metadata["namespace"], body] if scoped else [body]
    else:
        args = [metadata["name"], metadata["namespace"]] if scoped else [metadata["name"]]
        args += [body] if body is not None else []
    return method(*args, **k8s.options(MERGE_PATCH if verb == "patch" else None))  # type: ignore[no-any-return]


# --- kubernetes.lock_service_account -------------------------------------------------------


class ServiceAccountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1, description="The ServiceAccount's name.")


def _binds(binding: dict[str, Any], params: ServiceAccountParams, subject: dict[str, Any]) -> bool:
    """Whether a subject of `binding` names the ServiceAccount (directly or as its user name)."""
    if subject.get("kind") == "ServiceAccount":
        # In a RoleBinding an empty namespace means the binding's own namespace.
        namespace = subject.get("namespace") or binding["metadata"].get("namespace")
        return bool(subject.get("name") == params.name and namespace == params.namespace)
    user = f"system:serviceaccount:{params.namespace}:{params.name}"
    return bool(subject.get("kind") == "User" and subject.get("name") == user)


@register
class LockServiceAccount(Action[ServiceAccountParams]):
    """Take every RBAC grant away from a ServiceAccount and stop new pods from mounting its token.

    Each (Cluster)RoleBinding naming the account is backed up, then deleted, or patched to drop
    just that subject when it binds others too. `automountServiceAccountToken` is set to false
    (running pods keep their mounted token until restarted) and legacy token Secrets
    (`kubernetes.io/service-account-token`) are deleted, which invalidates those tokens.
    Undo restores the bindings from the backup and the automount flag; deleted token Secrets are
    not restored (a new one would hold a new token anyway).

    Bindings to the groups every ServiceAccount is in (`system:serviceaccounts`,
    `system:serviceaccounts:<namespace>`) are left alone, since changing them would affect every
    account; the outcome's detail counts them.

    RBAC escalation caveat: Kubernetes only lets an identity create a binding when it holds the
    `bind` verb on the role or already has every permission in it. A responder allowed to delete
    bindings may therefore be unable to restore them; run undo as a more privileged identity.
    """

    name = "kubernetes.lock_service_account"
    system = "kubernetes"
    description = "Remove a ServiceAccount's (Cluster)RoleBindings, stop token automount."
    permissions = (
        "rbac.authorization.k8s.io rolebindings: list, get, delete, patch (all namespaces)",
        "rbac.authorization.k8s.io clusterrolebindings: list, get, delete, patch",
        "core serviceaccounts: get, patch",
        "core secrets: list, delete (in the account's namespace)",
        "undo: create on rolebindings/clusterrolebindings and bind on the roles they reference",
    )
    reversible = True
    params_model = ServiceAccountParams

    def targets(self, params: ServiceAccountParams) -> list[Target]:
        return [
            Target(kind="identity", system="kubernetes", name=f"{params.namespace}/{params.name}")
        ]

    async def _bindings(self, k8s: KubernetesApi) -> list[dict[str, Any]]:
        """Every binding, with the apiVersion and kind that list items leave out."""
        role = await k8s.call(
            "list RoleBindings", k8s.rbac.list_role_binding_for_all_namespaces(**k8s.options())
        )
        cluster = await k8s.call(
            "list ClusterRoleBindings", k8s.rbac.list_cluster_role_binding(**k8s.options())
        )
        typed = {"apiVersion": f"{RBAC_GROUP}/v1"}
        return [{**b, **typed, "kind": "RoleBinding"} for b in (role or {}).get("items", [])] + [
            {**b, **typed, "kind": "ClusterRoleBinding"} for b in (cluster or {}).get("items", [])
        ]

    async def _token_secrets(self, k8s: KubernetesApi, params: ServiceAccountParams) -> list[str]:
        listed = await k8s.call(
            "list token Secrets",
            k8s.core.list_namespaced_secret(
                params.namespace,
                field_selector="type=kubernetes.io/service-account-token",
                **k8s.options(),
            ),
        )
        return [
            s["metadata"]["name"]
            for s in (listed or {}).get("items", [])
            if s["metadata"].get("annotations", {}).get("kubernetes.io/service-account.name")
            == params.name
        ]

    async def _account(
        self, k8s: KubernetesApi, params: ServiceAccountParams
    ) -> dict[str, Any] | None:
        return await k8s.call(
            "read the ServiceAccount",
            k8s.core.read_namespaced_service_account(
                params.name, params.namespace, **k8s.options()
            ),
            missing_ok=True,
        )

    async def execute(self, params: ServiceAccountParams) -> ActionOutcome:
        removed: list[JsonValue] = []  # what undo restores, binding by binding
        secrets: list[JsonValue] = []
        # Only what was changed: a retry after a failure halfway merges its own in.
        undo_state: dict[str, JsonValue] = {"bindings": removed, "deleted_token_secrets": secrets}
        async with KubernetesApi(self.connection) as k8s:
            try:
                via_groups = await self._lock(k8s, params, undo_state)
            except ActionError as exc:
                # A failure halfway (a 409 on the third binding) keeps the backups of what
                # was already removed, so that undo can restore it.
                if removed or "automount" in undo_state or secrets:
                    exc.undo_state = undo_state
                raise
        # The flag before the change; "absent": nothing to reset (already off, or no account).
        automount = undo_state.setdefault("automount", "absent")
        if not removed and automount == "absent" and not secrets:
            return ActionOutcome(
                state="already_done", detail="no bindings, automount off", undo_state=undo_state
            )
        detail = (
            f"{len(removed)} binding(s) changed, automount off, {len(secrets)} Secret(s) deleted"
        )
        if via_groups:
            detail += f"; {via_groups} group binding(s) still grant it (left alone)"
        return ActionOutcome(state="done", detail=detail, undo_state=undo_state)

    async def _lock(
        self, k8s: KubernetesApi, params: ServiceAccountParams, undo_state: dict[str, JsonValue]
    ) -> int:
        """Remove the bindings, turn automount off, delete token Secrets, recording each
        change in `undo_state` as it is made; the number of group bindings left alone."""
        removed, secrets = undo_state["bindings"], undo_state["deleted_token_secrets"]
        assert isinstance(removed, list) and isinstance(secrets, list)
        groups = {"system:serviceaccounts", f"system:serviceaccounts:{params.namespace}"}
        via_groups = 0
        for binding in await self._bindings(k8s):
            subjects = binding.get("subjects") or []
            mine = [s for s in subjects if _binds(binding, params, s)]
            if mine:
                removed.append(await self._remove(k8s, binding, subjects, mine))
            via_groups += any(
                s.get("kind") == "Group" and s.get("name") in groups for s in subjects
            )
        account = await self._account(k8s, params)
        if account is not None:
            automount = account.get("automountServiceAccountToken")
            if automount is not False:
                undo_state["automount"] = automount  # before the call: it may apply and time out
                await k8s.call(
                    "turn off token automount",
                    k8s.core.patch_namespaced_service_account(
                        params.name,
                        params.namespace,
                        {"automountServiceAccountToken": False},
                        **k8s.options(MERGE_PATCH),
                    ),
                )
        for secret in await self._token_secrets(k8s, params):
            await k8s.call(
                "delete a token Secret",
                k8s.core.delete_namespaced_secret(secret, params.namespace, **k8s.options()),
                missing_ok=True,
            )
            secrets.append(secret)
        return via_groups

    async def _remove(
        self,
        k8s: KubernetesApi,
        binding: dict[str, Any],
        subjects: list[dict[str, Any]],
        mine: list[dict[str, Any]],
    ) -> dict[str, JsonValue]:
        kind, name = binding["kind"], binding["metadata"]["name"]
        backup: JsonValue = restorable(binding, binding["apiVersion"], kind)
        if len(mine) == len(subjects):
            await k8s.call(
                f"delete {kind} {name}", _binding_request(k8s, "delete", binding), missing_ok=True
            )
            return {"change": "deleted", "object": backup}
        # Other subjects keep their grant; the resourceVersion makes a concurrent edit a 409.
        patch = {
            "metadata": {"resourceVersion": binding["metadata"]["resourceVersion"]},
            "subjects": [s for s in subjects if s not in mine],
        }
        await k8s.call(
            f"remove the subject from {kind} {name}",
            _binding_request(k8s, "patch", binding, patch),
        )
        return {"change": "subject_removed", "object": backup, "subjects": list(mine)}

    async def verify(self, params: ServiceAccountParams) -> bool:
        async with KubernetesApi(self.connection) as k8s:
            for binding in await self._bindings(k8s):
                if any(_binds(binding, params, s) for s in binding.get("subjects") or []):
                    return False
            account = await self._account(k8s, params)
            if account is not None and account.get("automountServiceAccountToken") is not False:
                return False
            return not await self._token_secrets(k8s, params)

    async def undo(self, params: ServiceAccountParams, outcome: ActionOutcome) -> ActionOutcome:
        restored = 0
        async with KubernetesApi(self.connection) as k8s:
            entries = outcome.undo_state.get("bindings")
            for entry in entries if isinstance(entries, list) else []:
                assert isinstance(entry, dict)
                restored += await self._restore(k8s, entry)
            automount = outcome.undo_state.get("automount", "absent")
            if automount != "absent" and automount is not False:
                # null removes the field again, which is how it was when it was unset.
                await k8s.call(
                    "restore token automount",
                    k8s.core.patch_namespaced_service_account(
                        params.name,
                        params.namespace,
                        {"automountServiceAccountToken": automount},
                        **k8s.options(MERGE_PATCH),
                    ),
                )
        return ActionOutcome(
            state="done", detail=f"{restored} binding(s) restored, automount reset"
        )

    async def _restore(self, k8s: KubernetesApi, entry: dict[str, Any]) -> int:
        backup = entry["object"]
        what = f"{backup['kind']} {backup['metadata']['name']}"
        if entry["change"] == "deleted":
            try:
                await k8s.call(f"re-create {what}", _binding_request(k8s, "create", backup, backup))
            except ActionError as exc:
                if exc.status != 409:  # 409: it exists again (re-created by GitOps, say)
                    raise
                return 0
            return 1
        current = await k8s.call(f"read {what}", _binding_request(k8s, "read", backup))
        assert current is not None
        subjects = current.get("subjects") or []
        missing = [s for s in entry["subjects"] if s not in subjects]
        if not missing:
            return 0
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "subjects": subjects + missing,
        }
        await k8s.call(
            f"add the subject back to {what}", _binding_request(k8s, "patch", backup, patch)
        )
        return 1


# --- kubernetes.quarantine_pod -------------------------------------------------------------


class QuarantineParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    pod: str = Field(min_length=1)
    label: str = Field(
        default="detector.quarantine",
        description="Label set to 'true' on the pod; a new label, never a selector label.",
    )
    policy_name: str = Field(
        default="detector-quarantine",
        description="The deny-all NetworkPolicy; one per namespace, shared by quarantined pods.",
    )


def _deny_all(params: QuarantineParams) -> Any:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": params.policy_name, "namespace": params.namespace},
        # No ingress and no egress rules: nothing in, nothing out.
        "spec": {
            "podSelector": {"matchLabels": {params.label: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


@register
class QuarantinePod(Action[QuarantineParams]):
    """Cut a pod off the network without killing it, so its memory and files stay for forensics.

    Labels the pod and makes sure a deny-all ingress+egress NetworkPolicy selects that label.
    It only works where the CNI enforces NetworkPolicy; whether open connections are cut
    depends on the CNI. Undo removes the label, and the policy once no pod carries the label.
    """

    name = "kubernetes.quarantine_pod"
    system = "kubernetes"
    description = "Label a pod and isolate it with a deny-all NetworkPolicy."
    permissions = (
        "core pods: get, list, patch",
        "networking.k8s.io networkpolicies: get, create, delete",
    )
    reversible = True
    params_model = QuarantineParams

    def targets(self, params: QuarantineParams) -> list[Target]:
        return [
            Target(kind="resource", system="kubernetes", name=f"{params.namespace}/{params.pod}")
        ]

    async def _pod(self, k8s: KubernetesApi, params: QuarantineParams) -> dict[str, Any]:
        pod = await k8s.call(
            f"read pod {params.pod}",
            k8s.core.read_namespaced_pod(params.pod, params.namespace, **k8s.options()),
        )
        assert pod is not None
        return pod

    async def _policy(self, k8s: KubernetesApi, params: QuarantineParams) -> dict[str, Any] | None:
        return await k8s.call(
            "read the quarantine NetworkPolicy",
            k8s.networking.read_namespaced_network_policy(
                params.policy_name, params.namespace, **k8s.options()
            ),
            missing_ok=True,
        )

    async def _label_pod(
        self, k8s: KubernetesApi, params: QuarantineParams, value: str | None
    ) -> None:
        await k8s.call(
            f"label pod {params.pod}",
            k8s.core.patch_namespaced_pod(
                params.pod,
                params.namespace,
                {"metadata": {"labels": {params.label: value}}},
                **k8s.options(STRATEGIC_MERGE_PATCH),
            ),
        )

    async def execute(self, params: QuarantineParams) -> ActionOutcome:
        async with KubernetesApi(self.connection) as k8s:
            before = (await self._pod(k8s, params))["metadata"].get("labels", {}).get(params.label)
            if before != "true":
                await self._label_pod(k8s, params, "true")
            created, policy = False, _deny_all(params)
            if await self._policy(k8s, params) is None:
                try:
                    await k8s.call(
                        "create the quarantine NetworkPolicy",
                        k8s.networking.create_namespaced_network_policy(
                            params.namespace, policy, **k8s.options()
                        ),
                    )
                    created = True
                except ActionError as exc:
                    if exc.status != 409:  # created meanwhile for another pod
                        raise
        state: Literal["done", "already_done"] = (
            "already_done" if before == "true" and not created else "done"
        )
        return ActionOutcome(
            state=state,
            detail=f"pod labelled {params.label}=true, deny-all policy {params.policy_name}",
            undo_state={"label_before": before},
        )

    async def verify(self, params: QuarantineParams) -> bool:
        async with KubernetesApi(self.connection) as k8s:
            labels = (await self._pod(k8s, params))["metadata"].get("labels", {})
            policy = await self._policy(k8s, params)
        if labels.get(params.label) != "true" or policy is None:
            return False
        spec = policy.get("spec", {})
        return (
            spec.get("podSelector") == {"matchLabels": {params.label: "true"}}
            and sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"]
            and not spec.get("ingress")
            and not spec.get("egress")
        )

    async def undo(self, params: QuarantineParams, outcome: ActionOutcome) -> ActionOutcome:
        before = outcome.undo_state.get("label_before")
        if before == "true":
            return ActionOutcome(state="already_done", detail="the pod was quarantined before")
        async with KubernetesApi(self.connection) as k8s:
            await self._label_pod(k8s, params, before if isinstance(before, str) else None)
            still = await k8s.call(
                "list quarantined pods",
                k8s.core.list_namespaced_pod(
                    params.namespace, label_selector=f"{params.label}=true", **k8s.options()
                ),
            )
            if (still or {}).get("items"):
                return ActionOutcome(
                    state="done", detail="label removed; policy kept for other pods"
                )
            await k8s.call(
                "delete the quarantine NetworkPolicy",
                k8s.networking.delete_namespaced_network_policy(
                    params.policy_name, params.namespace, **k8s.options()
                ),
                missing_ok=True,
            )
        return ActionOutcome(state="done", detail="label and deny-all policy removed")


# --- kubernetes.scale_to_zero --------------------------------------------------------------


class ScaleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"


@register
class ScaleToZero(Action[ScaleParams]):
    """Stop a workload's pods through its scale subresource, remembering the replica count.

    A HorizontalPodAutoscaler stops scaling a workload at 0 replicas; GitOps self-heal may scale
    it back up (suspend the GitOps object first).
    """

    name = "kubernetes.scale_to_zero"
    system = "kubernetes"
    description = "Scale a Deployment or StatefulSet to 0 replicas; undo restores the count."
    permissions = ("apps deployments/scale, statefulsets/scale: get, patch",)
    reversible = True
    params_model = ScaleParams

    def targets(self, params: ScaleParams) -> list[Target]:
        name = f"{params.namespace}/{params.kind.lower()}/{params.name}"
        return [Target(kind="resource", system="kubernetes", name=name)]

    async def _scale(self, k8s: KubernetesApi, params: ScaleParams) -> dict[str, Any]:
        if params.kind == "Deployment":
            request = k8s.apps.read_namespaced_deployment_scale(
                params.name, params.namespace, **k8s.options()
            )
        else:
            request = k8s.apps.read_namespaced_stateful_set_scale(
                params.name, params.namespace, **k8s.options()
            )
        scale = await k8s.call(f"read the scale of {params.kind} {params.name}", request)
        assert scale is not None
        return scale

    async def _set(self, k8s: KubernetesApi, params: ScaleParams, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        if params.kind == "Deployment":
            request = k8s.apps.patch_namespaced_deployment_scale(
                params.name, params.namespace, body, **k8s.options(MERGE_PATCH)
            )
        else:
            request = k8s.apps.patch_namespaced_stateful_set_scale(
                params.name, params.namespace, body, **k8s.options(MERGE_PATCH)
            )
        await k8s.call(f"scale {params.kind} {params.name} to {replicas}", request)

    async def execute(self, params: ScaleParams) -> ActionOutcome:
        async with KubernetesApi(self.connection) as k8s:
            replicas = int((await self._scale(k8s, params)).get("spec", {}).get("replicas", 0))
            if replicas == 0:
                return ActionOutcome(state="already_done", detail="already at 0 replicas")
            await self._set(k8s, params, 0)
        return ActionOutcome(
            state="done", detail=f"{replicas} -> 0 replicas", undo_state={"replicas": replicas}
        )

    async def verify(self, params: ScaleParams) -> bool:
        async with KubernetesApi(self.connection) as k8s:
            scale = await self._scale(k8s, params)
        return bool(
            scale.get("spec", {}).get("replicas", 0) == 0
            and scale.get("status", {}).get("replicas", 0) == 0
        )

    async def undo(self, params: ScaleParams, outcome: ActionOutcome) -> ActionOutcome:
        replicas = outcome.undo_state.get("replicas")
        if not isinstance(replicas, int):
            return ActionOutcome(state="already_done", detail="it was at 0 before")
        async with KubernetesApi(self.connection) as k8s:
            await self._set(k8s, params, replicas)
        return ActionOutcome(state="done", detail=f"back to {replicas} replicas")


# --- kubernetes.suspend_gitops -------------------------------------------------------------

GITOPS_KINDS: dict[str, tuple[str, str, str]] = {
    # kind: (group, version, plural)
    "Kustomization": ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
    "HelmRelease": ("helm.toolkit.fluxcd.io", "v2", "helmreleases"),
    "Application": ("argoproj.io", "v1alpha1", "applications"),
}


class GitOpsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: Literal["Kustomization", "HelmRelease", "Application"]
    version: str | None = Field(default=None, description="API version when not the default.")


@register
class SuspendGitOps(Action[GitOpsParams]):
    """Stop a GitOps controller from undoing containment (re-scaling, re-creating bindings).

    Flux: `spec.suspend: true`. Argo CD: `spec.syncPolicy.automated` is removed (and kept for
    undo). A parent Kustomization managing this object may set it back; Argo CD Applications
    owned by an ApplicationSet must be paused through the ApplicationSet.
    """

    name = "kubernetes.suspend_gitops"
    system = "kubernetes"
    description = "Suspend a Flux Kustomization/HelmRelease or Argo CD Application auto-sync."
    permissions = (
        "kustomize.toolkit.fluxcd.io kustomizations: get, patch",
        "helm.toolkit.fluxcd.io helmreleases: get, patch",
        "argoproj.io applications: get, patch",
    )
    reversible = True
    params_model = GitOpsParams

    def targets(self, params: GitOpsParams) -> list[Target]:
        name = f"{params.namespace}/{params.kind.lower()}/{params.name}"
        return [Target(kind="resource", system="kubernetes", name=name)]

    def _where(self, params: GitOpsParams) -> tuple[str, str, str, str, str]:
        group, version, plural = GITOPS_KINDS[params.kind]
        return group, params.version or version, params.namespace, plural, params.name

    async def _read(self, k8s: KubernetesApi, params: GitOpsParams) -> dict[str, Any]:
        obj = await k8s.call(
            f"read {params.kind} {params.name}",
            k8s.custom.get_namespaced_custom_object(*self._where(params), **k8s.options()),
        )
        assert obj is not None
        return obj

    async def _patch(self, k8s: KubernetesApi, params: GitOpsParams, body: dict[str, Any]) -> None:
        # Custom resources take JSON merge patches, not strategic merge patches.
        await k8s.call(
            f"patch {params.kind} {params.name}",
            k8s.custom.patch_namespaced_custom_object(
                *self._where(params), body, **k8s.options(MERGE_PATCH)
            ),
        )

    @staticmethod
    def _paused(params: GitOpsParams, obj: dict[str, Any]) -> bool:
        spec = obj.get("spec", {})
        if params.kind != "Application":
            return spec.get("suspend") is True
        automated = (spec.get("syncPolicy") or {}).get("automated")
        return automated is None or automated.get("enabled") is False

    async def execute(self, params: GitOpsParams) -> ActionOutcome:
        async with KubernetesApi(self.connection) as k8s:
            obj = await self._read(k8s, params)
            if self._paused(params, obj):
                return ActionOutcome(state="already_done", detail="reconciliation already paused")
            rv = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            if params.kind == "Application":
                automated = obj["spec"]["syncPolicy"]["automated"]
                patch = {"metadata": rv, "spec": {"syncPolicy": {"automated": None}}}
                undo_state: dict[str, JsonValue] = {"automated": automated}
            else:
                patch = {"metadata": rv, "spec": {"suspend": True}}
                undo_state = {"suspend": obj.get("spec", {}).get("suspend")}
            await self._patch(k8s, params, patch)
        return ActionOutcome(state="done", detail="reconciliation paused", undo_state=undo_state)

    async def verify(self, params: GitOpsParams) -> bool:
        async with KubernetesApi(self.connection) as k8s:
            return self._paused(params, await self._read(k8s, params))

    async def undo(self, params: GitOpsParams, outcome: ActionOutcome) -> ActionOutcome:
        if not outcome.undo_state:
            return ActionOutcome(state="already_done", detail="it was paused before")
        if params.kind == "Application":
            patch: dict[str, Any] = {
                "spec": {"syncPolicy": {"automated": outcome.undo_state["automated"]}}
            }
        else:  # null removes `suspend` again when it was unset
            patch = {"spec": {"suspend": outcome.undo_state.get("suspend")}}
        async with KubernetesApi(self.connection) as k8s:
            await self._patch(k8s, params, patch)
        return ActionOutcome(state="done", detail="reconciliation resumed")
