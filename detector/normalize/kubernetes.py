"""Kubernetes API server audit events (`audit.k8s.io/v1`, kind `Event`).

Input: one `Event` per line (log backend) or an `EventList` batch (webhook backend),
plus the older Falco trace shape (kind `Event` without `apiVersion`). The API server
writes `kind`/`apiVersion` on the list only, so the items of an `EventList` carry
neither and are recognized by `auditID` + `stage` + `verb`. Mapping choices:

- `@timestamp` is `stageTimestamp`, else `requestReceivedTimestamp`.
- `event.id` is `<auditID>:<stage>`: one request is logged once per stage.
- `event.action` is `<verb> <resource>[/<subresource>]` ("create pods/exec"); a
  non-resource request has no `objectRef` and gets `<verb> <path>` ("get /version").
- `user.*` is the authenticated identity; `impersonatedUser` stays in `raw` (ECS puts it
  in `user.effective.*`, which the flat model does not have).
- `user.type`: Kubernetes keeps user accounts for humans and service accounts for
  processes. `system:serviceaccount:*`, nodes (`system:node:*`) and the other `system:`
  component identities are `service_account`, and so are the identities managed
  clusters run their components as (EKS `eks:*`, AKS `aksService` and `masterclient`);
  `system:anonymous` has no type; any other username is `human`.
- `source.ip` is the last element of `sourceIPs`, the only one the API server saw itself.
- `resource.kind`/`resource.name`/`namespace` name the object (`objectRef.resource`,
  `.name`, `.namespace`); the subresource is only in `event.action`, so a pod and an exec
  into it share a `resource.kind`.
- `event.outcome`: failure when the authorizer said `forbid` or `responseStatus.code`
  >= 400, success for a lower code, absent before a response (stage `RequestReceived`).
- `event.category` is `api` (every record is an API call), plus `iam` for RBAC,
  service-account and certificate-signing objects; `event.type` follows the verb, plus
  `denied` when the authorizer forbade the request.
- `token.id` is the single `authentication.kubernetes.io/credential-id` of the
  authenticated user, prefix kept (`JTI=...` for a service-account token, `X509SHA256=...`
  for a client certificate).
- `image.name`/`image.digest` are set when a create, update or patch of a pod or
  pod-template workload carries exactly one distinct container image (a patch carries
  the containers it sets, as `kubectl set image` and GitOps controllers send); they are read as
  `detector.normalize.images` says (no registry host, no tag), so they join with the
  registry's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from detector.events import Event, Outcome, UserType
from detector.json_keys import parsed_key
from detector.normalize.base import Normalizer, content_id, dig, first_time, ip, text, trusted_event
from detector.normalize.images import split_reference

_AUDIT_API_PREFIX: Final = "audit.k8s.io/"
#: the audit event's top-level keys as orjson's key objects (see `detector.json_keys`):
#: an event has more than five, so a look-up by an equal string compares by value
_KIND: Final = parsed_key("kind")
_API_VERSION: Final = parsed_key("apiVersion")
_ITEMS: Final = parsed_key("items")
_AUDIT_ID: Final = parsed_key("auditID")
_STAGE: Final = parsed_key("stage")
_VERB: Final = parsed_key("verb")
_OBJECT_REF: Final = parsed_key("objectRef")
_USER: Final = parsed_key("user")
_ANNOTATIONS: Final = parsed_key("annotations")
_TIMES: Final = (parsed_key("stageTimestamp"), parsed_key("requestReceivedTimestamp"))
_SOURCE_IPS: Final = parsed_key("sourceIPs")
_USER_AGENT: Final = parsed_key("userAgent")
_REQUEST_URI: Final = parsed_key("requestURI")
_RESPONSE_STATUS: Final = parsed_key("responseStatus")
_REQUEST_OBJECT: Final = parsed_key("requestObject")
_CREDENTIAL_ID: Final = "authentication.kubernetes.io/credential-id"
_DECISION: Final = "authorization.k8s.io/decision"

#: A tuple, not a set: `in` must not hash an arbitrary (possibly unhashable) value.
_STAGES: Final = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

_VERB_TYPES: Final = {
    "create": "creation",
    "update": "change",
    "patch": "change",
    "delete": "deletion",
    "deletecollection": "deletion",
    "get": "access",
    "list": "access",
    "watch": "access",
}

_IAM_RESOURCES: Final = frozenset(
    {
        "roles",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
        "serviceaccounts",
        "certificatesigningrequests",
    }
)

#: Where the pod spec sits in the request object of each workload resource.
_POD_SPEC_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "pods": ("spec",),
    "deployments": ("spec", "template", "spec"),
    "daemonsets": ("spec", "template", "spec"),
    "statefulsets": ("spec", "template", "spec"),
    "replicasets": ("spec", "template", "spec"),
    "replicationcontrollers": ("spec", "template", "spec"),
    "jobs": ("spec", "template", "spec"),
    "cronjobs": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _is_audit_api(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_AUDIT_API_PREFIX)


class KubernetesAuditNormalizer(Normalizer):
    """API server audit events; SigmaHQ `kubernetes/audit` rules see the raw event."""

    name = "kubernetes"
    product = "kubernetes"
    service = "audit"

    def unwrap(self, document: dict[str, Any]) -> Sequence[Any] | None:
        """The `items` of an audit `EventList`; `items: null` is an empty batch.

        An `EventList` whose `items` is not a list is not treated as an envelope, so it
        is reported as an unrecognized record instead of being half-read.
        """
        if document.get(_KIND) != "EventList" or not _is_audit_api(document.get(_API_VERSION)):
            return None
        items = document.get(_ITEMS)
        if items is None:
            return []
        return items if isinstance(items, list) else None

    def matches(self, record: dict[str, Any]) -> bool:
        kind = record.get(_KIND)
        api_version = record.get(_API_VERSION)
        if api_version is not None:
            # Core `v1` / `events.k8s.io` Events share the kind but are not audit records.
            return kind == "Event" and _is_audit_api(api_version)
        return (
            kind in (None, "Event")
            and isinstance(record.get(_AUDIT_ID), str)
            and record.get(_STAGE) in _STAGES
            and isinstance(record.get(_VERB), str)
        )

    def normalize(self, record: dict[str, Any]) -> Event:
        object_ref = _mapping(record.get(_OBJECT_REF))
        user = _mapping(record.get(_USER))
        verb = text(record.get(_VERB))
        resource = text(object_ref.get("resource"))
        subresource = text(object_ref.get("subresource"))
        username = text(user.get("username"))
        audit_id = text(record.get(_AUDIT_ID))
        stage = text(record.get(_STAGE))
        forbidden = _mapping(record.get(_ANNOTATIONS)).get(_DECISION) == "forbid"
        image_name, image_digest = _image(record, verb, resource, subresource)
        return trusted_event(
            timestamp=first_time(record, _TIMES),
            event_id=f"{audit_id}:{stage}" if audit_id and stage else content_id(record),
            event_source=self.name,
            event_action=_action(record, verb, resource, subresource),
            event_category=["api", "iam"] if resource in _IAM_RESOURCES else ["api"],
            event_type=_types(verb, forbidden),
            event_outcome=_outcome(record, forbidden),
            user_name=username,
            user_id=text(user.get("uid")),
            user_type=_user_type(username),
            source_ip=_source_ip(record.get(_SOURCE_IPS)),
            user_agent=text(record.get(_USER_AGENT)),
            namespace=text(object_ref.get("namespace")),
            resource_kind=resource,
            resource_name=text(object_ref.get("name")),
            image_name=image_name,
            image_digest=image_digest,
            token_id=_single_text(dig(user, "extra", _CREDENTIAL_ID)),
            raw=record,
        )


#: Stands in for a missing or non-object nested field, so reading it gives None.
_EMPTY: Final[dict[str, Any]] = {}


def _mapping(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (read only)."""
    return value if isinstance(value, dict) else _EMPTY


def _action(
    record: dict[str, Any], verb: str | None, resource: str | None, subresource: str | None
) -> str | None:
    if verb is None:
        return None
    if resource is not None:
        return f"{verb} {resource}/{subresource}" if subresource else f"{verb} {resource}"
    if record.get(_OBJECT_REF) is None:
        uri = text(record.get(_REQUEST_URI))
        if uri is not None:
            return f"{verb} {uri.split('?', 1)[0]}"
    return verb


def _types(verb: str | None, forbidden: bool) -> list[str] | None:
    types = [_VERB_TYPES[verb]] if verb in _VERB_TYPES else []
    if forbidden:
        types.append("denied")
    return types or None


def _outcome(record: dict[str, Any], forbidden: bool) -> Outcome | None:
    if forbidden:
        return "failure"
    code = dig(record, _RESPONSE_STATUS, "code")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return "failure" if code >= 400 else "success"


#: Identities of cluster components: Kubernetes' own, EKS's, and AKS's.
_COMPONENT_PREFIXES: Final = ("system:", "eks:")
_COMPONENT_NAMES: Final = frozenset({"aksService", "masterclient"})


def _user_type(username: str | None) -> UserType | None:
    if username is None or username == "system:anonymous":
        return None
    if username.startswith(_COMPONENT_PREFIXES) or username in _COMPONENT_NAMES:
        return "service_account"
    return "human"


def _source_ip(source_ips: Any) -> str | None:
    if isinstance(source_ips, list) and source_ips:
        return ip(source_ips[-1])
    return None


def _single_text(values: Any) -> str | None:
    """The one value of a single-element list (`user.extra` values are lists)."""
    if isinstance(values, list) and len(values) == 1:
        return text(values[0])
    return None


def _image(
    record: dict[str, Any], verb: str | None, resource: str | None, subresource: str | None
) -> tuple[str | None, str | None]:
    """(name, digest) of the only container image a create/update request carries."""
    path = _POD_SPEC_PATHS.get(resource or "")
    # A patch carries the containers it sets: `kubectl set image`, GitOps controllers.
    if verb not in ("create", "update", "patch") or subresource is not None or path is None:
        return None, None
    spec = dig(record.get(_REQUEST_OBJECT), *path)
    images: set[str] = set()
    for key in ("initContainers", "containers"):
        containers = dig(spec, key)
        if not isinstance(containers, list):
            continue
        for container in containers:
            image = text(dig(container, "image"))
            if image is not None:
                images.add(image)
    if len(images) != 1:
        return None, None
    return split_reference(images.pop())
