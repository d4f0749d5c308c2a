"""Detections into an Elasticsearch or OpenSearch data stream, through the bulk API.

One attempt indexes up to `batch_size` pending detections in one bulk request, each
created under its detection id, so a redelivery (a retry, a restart, a replay) leaves
one document per detection. Each item is settled on its own (`search.bulk`): a document
the mapping refuses is dead-lettered with the engine's reason while the rest are indexed;
items the cluster was too busy for (429) are retried with the worker's backoff. The
index template is installed (or, with `install_template: false`, verified) before the
first bulk request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.detections import Detection
from detector.search import bulk
from detector.search.connection import SearchConnection
from detector.search.templates import detections_template
from detector.sinks.base import Outcome, Retry, Sink


class SearchSink(Sink):
    """Bulk-indexes detections into the data stream `stream`."""

    def __init__(
        self,
        name: str,
        connection: SearchConnection,
        stream: str,
        batch_size: int = 500,
        install_template: bool = True,
    ) -> None:
        super().__init__(name, connection.secrets())
        self.batch_size = batch_size
        self._connection = connection
        self._stream = stream
        self._install_template = install_template
        self._client: Any = None
        self._template_ready = False

    async def send(self, detection: Detection) -> Outcome:
        return (await self.send_batch([detection]))[0]

    async def send_batch(self, detections: Sequence[Detection]) -> list[Outcome]:
        body = bulk.operations(self._stream, [(d.id, d.to_json()) for d in detections])
        try:
            client = await self._ready()
            if isinstance(client, Retry):
                return [client] * len(detections)
            response = await client.bulk(body=body)
        except Exception as exc:
            outcome = bulk.request_failure(exc, self.scrub)
            if outcome is None:
                raise
            return [outcome] * len(detections)
        return bulk.outcomes(getattr(response, "body", response), len(detections), self.scrub)

    async def _ready(self) -> Any:
        """The client, once the index template is in place; a Retry while it is not."""
        if self._client is None:
            self._client = self._connection.async_client()
        if not self._template_ready:
            name = self._stream
            if self._install_template:
                await self._client.indices.put_index_template(
                    name=name, body=detections_template(self._stream)
                )
            elif not await self._client.indices.exists_index_template(name=name):
                return Retry(f"index template {name!r} is missing (install_template is off)")
            self._template_ready = True
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
