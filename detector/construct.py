"""Model instances from values the engine made itself, without pydantic's validation.

Compiled with the hot path: every normalized event and every single-event detection is
built here, and validation would only cost time on values whose types hold by
construction (tests re-validate what the built-in normalizers make).
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)

#: `object.__new__` as a Final name: compiled, a C static, where `object` would be looked
#: up among the builtins and `__new__` on it for every event
_NEW_OBJECT: Final = object.__new__


def unvalidated(cls: type[Model], values: dict[str, Any], fields_set: set[str]) -> Model:
    """A model instance holding `values` (every field, in field order) as they are. What
    pydantic's `model_construct` does, without its per-field default handling."""
    instance: Model = _NEW_OBJECT(cls)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", fields_set)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
