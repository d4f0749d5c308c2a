"""Sigma correlation rules in event time.

Public API:
- `compile_correlations(load_result) -> CorrelationSet` (rules in dependency order,
  errors, `silenced`: the rules whose own detections `generate: false` turns off)
- `CorrelationEngine(correlation_set, EngineSettings(...))`: `process(event, matched_rules)`
  and `flush()` return detections (and dead letters for late events); `snapshot()` /
  `restore(state)`; `stats`, `watermark`
- `checkpoint.Checkpoint`, `checkpoint.save/load/encode/decode`, `CheckpointError`
- `parse_timespan("10m") -> 600`
"""

from detector.correlate.checkpoint import Checkpoint, CheckpointError
from detector.correlate.engine import (
    DEFAULT_MAX_GROUPS,
    CorrelationEngine,
    CorrelationStats,
    EngineSettings,
)
from detector.correlate.model import (
    Condition,
    CorrelationRule,
    CorrelationSet,
    compile_correlations,
    parse_timespan,
)

__all__ = [
    "DEFAULT_MAX_GROUPS",
    "Checkpoint",
    "CheckpointError",
    "Condition",
    "CorrelationEngine",
    "CorrelationRule",
    "CorrelationSet",
    "CorrelationStats",
    "EngineSettings",
    "compile_correlations",
    "parse_timespan",
]
