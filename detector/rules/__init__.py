"""Sigma rule engine core: compile Sigma rules into fast matchers over JSON records.

Public API:
- `load_rules(paths, placeholders=None) -> LoadResult` (rules, errors, correlations, filters,
  and the files read: `read_rule_sources`, which `load_rules` also takes)
- `compile_rule(rule, placeholders=None, filters=()) -> CompiledRule`
- `compile_filter(sigma_filter, placeholders=None) -> CompiledFilter`
- `CompiledRule.matches(record) -> bool`, `CompiledRule.explain(record) -> Explanation`
- `RuleCompileError` for rules that cannot be evaluated
"""

from detector.rules import modifiers as _spec_modifiers  # noqa: F401  (registers utf16le)
from detector.rules.compiled import (
    CompiledFilter,
    CompiledRule,
    Explanation,
    LogSource,
    compile_filter,
    compile_rule,
)
from detector.rules.errors import RuleCompileError
from detector.rules.loader import LoadResult, RuleError, RuleSources, load_rules, read_rule_sources
from detector.rules.placeholders import Placeholders

__all__ = [
    "CompiledFilter",
    "CompiledRule",
    "Explanation",
    "LoadResult",
    "LogSource",
    "Placeholders",
    "RuleCompileError",
    "RuleError",
    "RuleSources",
    "compile_filter",
    "compile_rule",
    "load_rules",
    "read_rule_sources",
]
