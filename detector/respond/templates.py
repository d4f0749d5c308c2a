"""Action parameters rendered from a detection, in Jinja's sandbox.

A playbook is configuration, but its templates see data an attacker shapes (a user
name, a repository name, a commit message). The sandbox refuses attribute access to
internals (`__class__`, `mro`, function globals) and unsafe methods; an undefined name
is an error, never an empty string (a blank parameter could widen an action, e.g. a
blank user in a filter); and the context is plain JSON data, so there is no object
whose methods could reach anything. A rendered value is always a string: the action's
params model converts it, and refuses what does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import SandboxedEnvironment

#: longest rendered parameter: a parameter is a name or an id, never a document
MAX_RENDERED = 4096


class TemplateError(ValueError):
    """A template that does not parse, or cannot be rendered from this detection."""


_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def parse_template(text: str) -> Template:
    try:
        return _ENVIRONMENT.from_string(text)
    except JinjaError as exc:
        raise TemplateError(f"template does not parse: {exc}") from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """A parameter value with every template in it rendered (lists item by item)."""
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if not isinstance(value, str) or not is_template(value):
        return value
    template = parse_template(value)
    try:
        rendered = template.render(context)
    except JinjaError as exc:  # SecurityError and UndefinedError included
        raise TemplateError(f"cannot render {value!r}: {exc}") from None
    except (TypeError, ValueError, LookupError, ArithmeticError) as exc:
        raise TemplateError(f"cannot render {value!r}: {type(exc).__name__}: {exc}") from None
    if len(rendered) > MAX_RENDERED:
        raise TemplateError(f"{value!r} renders to more than {MAX_RENDERED} characters")
    return rendered


def render_params(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    return {key: render_value(value, context) for key, value in params.items()}
