"""Bulk indexing into a data stream, and what each item's answer means for delivery.

Every document is sent with `op_type: create` and `_id` = its id (the detection id, the
event id), so sending it again is harmless: the engine answers 409 for that item, which
means it is indexed already. Per item: 2xx and 409 are delivered; 429 and 5xx are worth
another attempt; any other 4xx (a mapping conflict, a document the mapping refuses) is
rejected for good, with the engine's error type and reason. A failure of the whole
request (network, 429, 5xx, 401) retries every item of it, as `sinks.http` does for one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from detector.sinks.base import DELIVERED, Outcome, Rejected, Retry, is_retryable

#: How much of an engine's error goes into a reason (characters).
_SNIPPET = 300


def operations(index: str, documents: Sequence[tuple[str, bytes]]) -> str:
    """The NDJSON body creating each `(id, json)` document in `index`."""
    lines = []
    for document_id, body in documents:
        action = {"create": {"_index": index, "_id": document_id}}
        lines.append(orjson.dumps(action).decode("utf-8"))
        lines.append(body.decode("utf-8"))
    return "\n".join(lines) + "\n"


def item_outcome(item: dict[str, Any], scrub: Callable[[str], str]) -> Outcome:
    """The outcome of one item of a bulk response (`{"create": {...}}`)."""
    result = next(iter(item.values()))
    status = int(result.get("status", 0))
    if 200 <= status < 300 or status == 409:
        return DELIVERED
    error = result.get("error") or {}
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type')}: {cause['reason']})"
    else:
        text = str(error)
    reason = scrub(f"HTTP {status} {text}")[:_SNIPPET]
    return Retry(reason) if is_retryable(status) else Rejected(reason)


def request_failure(exc: Exception, scrub: Callable[[str], str]) -> Outcome | None:
    """The outcome of a whole bulk request that raised `exc`; None if it is not a client
    error (a bug: let it raise)."""
    # imported here, not with the module: the clients take a third of a second to import,
    # and most commands never reach a cluster
    import elastic_transport
    import elasticsearch
    import opensearchpy

    status: int | None = None
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status
    elif isinstance(exc, opensearchpy.TransportError) and isinstance(exc.status_code, int):
        status = exc.status_code
    elif not isinstance(exc, elastic_transport.TransportError | opensearchpy.TransportError):
        return None
    reason = scrub(f"{type(exc).__name__}: {exc}")[:_SNIPPET]
    if status is None or is_retryable(status) or status in (401, 403):
        # An unreachable cluster, or credentials being rotated: worth waiting for.
        return Retry(reason)
    return Rejected(reason)


def outcomes(response: dict[str, Any], count: int, scrub: Callable[[str], str]) -> list[Outcome]:
    """One outcome per document of a bulk response for `count` documents."""
    items = response.get("items") or []
    if len(items) != count:
        reason = f"the bulk response has {len(items)} items for {count} documents"
        return [Retry(reason)] * count
    return [item_outcome(item, scrub) for item in items]
