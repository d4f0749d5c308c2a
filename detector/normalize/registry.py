"""Container registry events: CNCF Distribution notifications and Harbor webhooks.

Both vendors are one source, `registry`; Sigma rules see the raw records with
`product: registry, service: audit` (SigmaHQ has no registry logsource), so a raw rule
names the vendor's own fields (`action`, `target.tag` / `type`, `event_data...`).

The normalized fields share one vocabulary across the two vendors:
- `event.action`: `push`, `pull`, `mount`, `delete` (Distribution's own verbs; Harbor's
  `PUSH_ARTIFACT`, `UPLOAD_CHART`... map onto them); any other Harbor type is its name
  lower-cased (`scanning_completed`, `quota_exceed`, `replication`...).
- `image.name`: the repository path without the registry host (`library/nginx`,
  Harbor's `repo_full_name`), because the host a client used varies (IP, DNS alias) and
  Harbor does not send it apart from the resource URL.
- `resource.kind`: `manifest` (an image manifest or index; a Harbor artifact), `blob`
  (a layer or config), `tag`, `repository` or `chart`; `resource.name`: the reference the
  action addressed: the tag, else the digest, else the repository.
- `user.type`: `service_account` for Harbor robot accounts (`robot$` names), else absent.

The registry is not `repository` (a source code repository) nor `organization`: those
stay absent. A Harbor record is one event even when it lists several artifacts; its
digest and tag are taken only when it lists exactly one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from detector.events import Event, Outcome, UserType
from detector.normalize.base import (
    NormalizationError,
    Normalizer,
    content_id,
    dig,
    ip,
    text,
    trusted_event,
)
from detector.timestamps import TimestampError, from_epoch, from_iso


class _Mapping(NamedTuple):
    """How one vendor action reads in the normalized vocabulary."""

    action: str
    kind: str | None
    category: tuple[str, ...] | None
    type: tuple[str, ...] | None
    outcome: Outcome | None


#: Distribution sends a notification only for a completed request: outcome success.
#: The resource kind comes from the target (see `_distribution_kind`).
_DISTRIBUTION: Final[dict[str, _Mapping]] = {
    "push": _Mapping("push", None, ("api",), ("creation",), "success"),
    "mount": _Mapping("mount", None, ("api",), ("creation",), "success"),
    "pull": _Mapping("pull", None, ("api",), ("access",), "success"),
    "delete": _Mapping("delete", None, ("api",), ("deletion",), "success"),
}

_HARBOR: Final[dict[str, _Mapping]] = {
    "PUSH_ARTIFACT": _Mapping("push", "manifest", ("api",), ("creation",), "success"),
    "PULL_ARTIFACT": _Mapping("pull", "manifest", ("api",), ("access",), "success"),
    "DELETE_ARTIFACT": _Mapping("delete", "manifest", ("api",), ("deletion",), "success"),
    "UPLOAD_CHART": _Mapping("push", "chart", ("api",), ("creation",), "success"),
    "DOWNLOAD_CHART": _Mapping("pull", "chart", ("api",), ("access",), "success"),
    "DELETE_CHART": _Mapping("delete", "chart", ("api",), ("deletion",), "success"),
    "SCANNING_COMPLETED": _Mapping(
        "scanning_completed", "manifest", ("vulnerability",), ("info",), "success"
    ),
    "SCANNING_FAILED": _Mapping(
        "scanning_failed", "manifest", ("vulnerability",), ("info",), "failure"
    ),
    "SCANNING_STOPPED": _Mapping(
        "scanning_stopped", "manifest", ("vulnerability",), ("info",), None
    ),
}

#: Media types of image manifests and indexes (Docker schema 1 and 2, OCI); any other
#: media type on a target is a blob.
_MANIFEST_MEDIA_TYPES: Final = frozenset(
    (
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.artifact.manifest.v1+json",
    )
)

#: Harbor's default prefix of robot account names (`robot$project+name`).
_ROBOT_PREFIX: Final = "robot$"


class RegistryNormalizer(Normalizer):
    """Distribution notification events (one per record) and Harbor Default webhooks."""

    name = "registry"
    product = "registry"
    service = "audit"

    def unwrap(self, document: dict[str, Any]) -> Sequence[Any] | None:
        """The events of a Distribution envelope `{"events": [...]}`."""
        if len(document) != 1:  # every document is asked: the cheap test first
            return None
        events = document.get("events")
        if not isinstance(events, list):
            return None
        if not any(isinstance(event, dict) and _is_distribution(event) for event in events):
            return None
        return events

    def matches(self, record: dict[str, Any]) -> bool:
        return _is_distribution(record) or _is_harbor(record)

    def normalize(self, record: dict[str, Any]) -> Event:
        if _is_distribution(record):
            return self._distribution(record)
        if _is_harbor(record):
            return self._harbor(record)
        raise NormalizationError("neither a Distribution notification event nor a Harbor webhook")

    def _distribution(self, record: dict[str, Any]) -> Event:
        if record.get("timestamp") is None:
            raise NormalizationError("Distribution event without `timestamp`")
        try:
            timestamp = from_iso(record["timestamp"])
        except TimestampError as exc:
            raise NormalizationError(f"bad timestamp: {exc}") from exc
        mapping = _DISTRIBUTION[record["action"]]
        target: dict[str, Any] = record["target"]
        repository = text(target.get("repository"))
        digest = text(target.get("digest"))
        user = text(dig(record, "actor", "name"))
        return trusted_event(
            timestamp=timestamp,
            event_id=text(record.get("id")) or content_id(record),
            event_source=self.name,
            event_action=mapping.action,
            event_category=_listed(mapping.category),
            event_type=_listed(mapping.type),
            event_outcome=mapping.outcome,
            user_name=user,
            user_type=_user_type(user),
            source_ip=_client_ip(dig(record, "request", "addr")),
            user_agent=text(dig(record, "request", "useragent")),
            resource_kind=_distribution_kind(target),
            resource_name=text(target.get("tag")) or digest or repository,
            image_name=repository,
            image_digest=digest,
            raw=record,
        )

    def _harbor(self, record: dict[str, Any]) -> Event:
        if record.get("occur_at") is None:
            raise NormalizationError("Harbor webhook without `occur_at`")
        try:
            timestamp = from_epoch(record["occur_at"], "s")
        except TimestampError as exc:
            raise NormalizationError(f"bad occur_at: {exc}") from exc
        kind: str = record["type"]
        mapping = _HARBOR.get(kind) or _Mapping(kind.lower(), None, None, None, None)
        resources = dig(record, "event_data", "resources")
        single = resources[0] if isinstance(resources, list) and len(resources) == 1 else None
        digest = text(dig(single, "digest"))
        user = text(record.get("operator"))
        return trusted_event(
            timestamp=timestamp,
            event_id=content_id(record),
            event_source=self.name,
            event_action=mapping.action or None,
            event_category=_listed(mapping.category),
            event_type=_listed(mapping.type),
            event_outcome=mapping.outcome,
            user_name=user,
            user_type=_user_type(user),
            resource_kind=mapping.kind,
            resource_name=text(dig(single, "tag")) or digest,
            image_name=text(dig(record, "event_data", "repository", "repo_full_name")),
            image_digest=digest,
            raw=record,
        )


def _is_distribution(record: dict[str, Any]) -> bool:
    action = record.get("action")
    return (
        isinstance(action, str)
        and action in _DISTRIBUTION
        and isinstance(record.get("target"), dict)
        and "timestamp" in record
    )


def _is_harbor(record: dict[str, Any]) -> bool:
    return (
        isinstance(record.get("type"), str)
        and "occur_at" in record
        and isinstance(record.get("event_data"), dict)
    )


def _distribution_kind(target: dict[str, Any]) -> str | None:
    """What a target is: its media type tells manifests from blobs.

    A delete names only the digest, which does not say whether a manifest or a blob went,
    so the kind stays absent; a tag delete names only the tag, a repository delete only
    the repository.
    """
    media_type = text(target.get("mediaType"))
    if media_type is not None:
        return "manifest" if media_type in _MANIFEST_MEDIA_TYPES else "blob"
    if text(target.get("digest")) is not None:
        return None
    if text(target.get("tag")) is not None:
        return "tag"
    return "repository" if text(target.get("repository")) is not None else None


def _client_ip(value: Any) -> str | None:
    """The client IP in `request.addr`, which is not always an IP and a port.

    It is `ip:port` or `[ipv6]:port`, or a bare IP when the registry took it from
    X-Forwarded-For; a host name is not an IP, so it leaves `source.ip` absent.
    """
    addr = text(value)
    if addr is None:
        return None
    host = addr
    if addr.startswith("["):
        host = addr[1:].partition("]")[0]
    elif addr.count(":") == 1:
        host = addr.partition(":")[0]
    return ip(host)


def _user_type(user: str | None) -> UserType | None:
    return "service_account" if user is not None and user.startswith(_ROBOT_PREFIX) else None


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return list(values) if values is not None else None
