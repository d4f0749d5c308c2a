"""Normalized events into the events data stream (`detector normalize --index es://...`),
so history can be searched, replayed from the index and checked with exported rules.

The official clients' `streaming_bulk` helper sends the events in chunks and retries the
items answered 429 with its own backoff; each item is then judged as the sink judges
detections (`search.bulk.item_outcome`): created or already there (409: an event id is
stable, so indexing the same logs twice leaves one document each) counts as indexed,
anything else goes to the dead letters with the engine's reason and the event's JSON.
Documents are the events as written out everywhere: `raw` redacted. The stream is
refreshed at the end, so every event indexed is searchable when the command returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from detector.deadletter import DeadLetter, DeadLetterFile
from detector.events import Event
from detector.search.bulk import item_outcome
from detector.search.connection import SearchConnection
from detector.search.templates import events_template
from detector.sinks.base import Delivered

#: 429 retries per chunk, starting at INITIAL_BACKOFF seconds and doubling
MAX_RETRIES = 8
INITIAL_BACKOFF = 1


@dataclass
class IndexCounts:
    indexed: int = 0
    refused: int = 0


def index_events(
    connection: SearchConnection,
    stream: str,
    events: Iterable[Event],
    letters: DeadLetterFile,
    chunk_size: int = 500,
) -> IndexCounts:
    """Index `events` into the data stream `stream`, installing its index template first."""
    client: Any = connection.client()
    counts = IndexCounts()
    documents: dict[str, bytes] = {}

    def actions() -> Iterator[dict[str, Any]]:
        for event in events:
            document = event.to_json()
            documents[event.event_id] = document
            yield {
                "_op_type": "create",
                "_index": stream,
                "_id": event.event_id,
                "_source": orjson.loads(document),
            }

    # imported here: a third of a second that commands not indexing should not wait for
    import elasticsearch.helpers
    import opensearchpy.helpers

    helpers: Any = (
        elasticsearch.helpers if connection.kind == "elasticsearch" else opensearchpy.helpers
    )
    try:
        client.indices.put_index_template(
            name=stream, body=events_template(connection.kind, stream)
        )
        for _, item in helpers.streaming_bulk(
            client,
            actions(),
            chunk_size=chunk_size,
            raise_on_error=False,
            max_retries=MAX_RETRIES,
            initial_backoff=INITIAL_BACKOFF,
        ):
            result = next(iter(item.values()))
            document = documents.pop(str(result.get("_id")), b"")
            outcome = item_outcome(item, str)
            if isinstance(outcome, Delivered):
                counts.indexed += 1
                continue
            counts.refused += 1
            letters.write(
                DeadLetter(
                    f"index {stream}: {outcome.reason}", f"event {result.get('_id')}", document
                )
            )
        # searchable before the command ends: a replay from the index right after would
        # otherwise miss the chunks of the last refresh interval
        client.indices.refresh(index=stream)
    finally:
        client.close()
    return counts
