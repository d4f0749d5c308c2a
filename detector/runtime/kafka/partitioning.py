"""Which `detector.hits` partition a correlation hit goes to.

A correlation group must live on one partition, so that one correlator sees all of it:
the partition is the Kafka default partitioner's (murmur2) of the key (correlation, group
key). Correlations chained to others (a correlation of correlations) are decided
together, because a detection of one becomes a hit of the other with another group key:
all groups of one chain share one key, the chain's.

An event's hits that land on one partition travel as one record: the correlation engine
takes each event once.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiokafka.partitioner import murmur2

from detector.correlate import CorrelationRule
from detector.correlate.engine import Hit


class HitPartitioner:
    """The record key of each hit, for the correlations of one rule set (engine order)."""

    def __init__(self, rules: Sequence[CorrelationRule], partitions: int) -> None:
        self.partitions = partitions
        parent = {rule.key: rule.key for rule in rules}

        def root(key: str) -> str:
            while parent[key] != key:
                key = parent[key]
            return key

        for rule in rules:
            for slot in rule.slots:
                if isinstance(slot.target, CorrelationRule) and slot.target.key in parent:
                    parent[root(slot.target.key)] = root(rule.key)
        members: dict[str, int] = {}
        for rule in rules:
            members[root(rule.key)] = members.get(root(rule.key), 0) + 1
        #: per correlation index: the chain's key, or None for a correlation on its own
        self._chain = [
            f"chain:{root(rule.key)}" if members[root(rule.key)] > 1 else None for rule in rules
        ]
        self._keys = [rule.key for rule in rules]

    def key(self, hit: Hit) -> bytes:
        index, group = hit[0], hit[1]
        chain = self._chain[index]
        if chain is not None:
            return chain.encode()
        return orjson.dumps([self._keys[index], list(group)])

    def partition(self, hit: Hit) -> int:
        hashed: int = murmur2(self.key(hit))
        return (hashed & 0x7FFFFFFF) % self.partitions

    def split(self, hits: Sequence[Hit]) -> dict[int, list[Hit]]:
        """One event's hits by partition."""
        if len(hits) == 1:
            return {self.partition(hits[0]): list(hits)}
        by_partition: dict[int, list[Hit]] = {}
        for hit in hits:
            by_partition.setdefault(self.partition(hit), []).append(hit)
        return by_partition
