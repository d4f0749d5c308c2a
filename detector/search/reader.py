"""Reading an index back in event-time order, page by page: the `replay` input
`es://INDEX` (`os://INDEX` for OpenSearch).

A point in time pins one view of the index (where the cluster has none: Elasticsearch
before 7.10, OpenSearch before 2.4, or a user not allowed to open one, `search_after`
walks the live index instead, which documents indexed meanwhile can shift), and
`search_after` walks it with a sort on
`@timestamp`, `event.source` and `event.id` (the engine's own merge order; Elasticsearch
adds `_shard_doc` to break the last ties), so memory holds one page whatever the index
size, and the sort values of the last document read are a position: `resume_after`
continues right after it.

Each document is a record for the normalize stage. A normalized event as the engine
writes it (`event.source` and the vendor's record under `raw`) is normalized again from
`raw` as that source, so the replay sees exactly what live processing saw; any other
document is a vendor record as it is (for example the Jenkins Audit Trail plugin's
Elasticsearch documents), its source detected from its shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from detector.search.connection import SearchConnection, search_errors
from detector.sources.records import RawRecord
from detector.timestamps import format_timestamp

SortKey = list[Any]


#: answers to opening a point in time from a cluster without them (no such endpoint, 403)
_NO_POINT_IN_TIME = (400, 403, 404, 405)


class SearchReadError(RuntimeError):
    """The index cannot be read (unreachable, refused, missing); the message says which."""


class IndexReader:
    """The documents of `index` in event time; `position` is the sort key of the last one
    read (None before the first), to pass as `resume_after` later."""

    def __init__(
        self,
        connection: SearchConnection,
        index: str,
        since: datetime | None = None,
        until: datetime | None = None,
        query: str | None = None,
        resume_after: SortKey | None = None,
        page_size: int = 1000,
        keep_alive: str = "5m",
        point_in_time: bool = True,
    ) -> None:
        self.connection = connection
        self.index = index
        self.page_size = page_size
        self.keep_alive = keep_alive
        #: False when reading without a point in time (asked, or the cluster has none)
        self.point_in_time = point_in_time
        self.position = resume_after
        self.read = 0
        self.pages = 0
        self._query = _query(since, until, query)
        self.scheme = "es" if connection.kind == "elasticsearch" else "os"

    def sort(self) -> list[dict[str, Any]]:
        sort: list[dict[str, Any]] = [{"@timestamp": {"order": "asc"}}]
        for field in ("event.source", "event.id"):
            sort.append({field: {"order": "asc", "unmapped_type": "keyword", "missing": "_first"}})
        if self.connection.kind == "elasticsearch":
            sort.append({"_shard_doc": {"order": "asc"}})
        return sort

    def __iter__(self) -> Iterator[RawRecord]:
        where = f"{self.scheme}://{self.index}"
        try:
            yield from self._pages()
        except search_errors() as exc:
            at = f" after {orjson.dumps(self.position).decode()}" if self.position else ""
            raise SearchReadError(f"{where}: cannot read{at}: {exc}") from None

    def _pages(self) -> Iterator[RawRecord]:
        client: Any = self.connection.client()
        pit = self._open(client) if self.point_in_time else None
        try:
            while True:
                body: dict[str, Any] = {
                    "size": self.page_size,
                    "query": self._query,
                    "sort": self.sort(),
                    "track_total_hits": False,
                }
                if pit is not None:
                    body["pit"] = {"id": pit, "keep_alive": self.keep_alive}
                if self.position is not None:
                    body["search_after"] = self.position
                page = client.search(body=body, index=None if pit else self.index)
                page = getattr(page, "body", page)
                pit = page.get("pit_id", pit)
                hits = page["hits"]["hits"]
                self.pages += 1
                for hit in hits:
                    self.position = hit["sort"]
                    self.read += 1
                    yield self.record(hit)
                if len(hits) < self.page_size:
                    return
        finally:
            if pit is not None:
                self._close(client, pit)
            client.close()

    def record(self, hit: dict[str, Any]) -> RawRecord:
        document = hit["_source"]
        origin = f"{self.scheme}://{self.index}/{hit['_id']}"
        source = document.get("event.source")
        raw = document.get("raw")
        if isinstance(source, str) and isinstance(raw, dict):
            return RawRecord(orjson.dumps(raw), origin, source)
        return RawRecord(orjson.dumps(document), origin)

    def _open(self, client: Any) -> str | None:
        """A point in time on the index; None where the cluster cannot open one."""
        import elasticsearch  # the client is loaded by now (`client` is one)
        import opensearchpy

        try:
            if self.connection.kind == "elasticsearch":
                opened = client.open_point_in_time(index=self.index, keep_alive=self.keep_alive)
                return str(opened["id"])
            opened = client.create_pit(index=self.index, params={"keep_alive": self.keep_alive})
            return str(opened["pit_id"])
        except (elasticsearch.ApiError, opensearchpy.TransportError) as exc:
            status = exc.meta.status if isinstance(exc, elasticsearch.ApiError) else exc.status_code
            if status not in _NO_POINT_IN_TIME:
                raise
            self.point_in_time = False
            return None

    def _close(self, client: Any, pit: str) -> None:
        if self.connection.kind == "elasticsearch":
            client.close_point_in_time(id=pit)
        else:
            client.delete_pit(body={"pit_id": [pit]})


def _query(since: datetime | None, until: datetime | None, query: str | None) -> dict[str, Any]:
    """`since` inclusive, `until` exclusive, and a Lucene query string."""
    filters: list[dict[str, Any]] = []
    bounds: dict[str, str] = {}
    if since is not None:
        bounds["gte"] = format_timestamp(since)
    if until is not None:
        bounds["lt"] = format_timestamp(until)
    if bounds:
        filters.append({"range": {"@timestamp": bounds}})
    if query:
        filters.append({"query_string": {"query": query}})
    return {"bool": {"filter": filters}} if filters else {"match_all": {}}
