"""Every action the README's tables document is registered, with the contract it documents,
and every registered action is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from detector.respond.actions.base import registered

README = Path(__file__).resolve().parents[2] / "README.md"
SYSTEMS = ("github", "gitlab", "kubernetes", "jenkins", "vault")
ROW = re.compile(r"^\| `((?:" + "|".join(SYSTEMS) + r")\.\w+)` \|.*\| ([^|]+) \|$")


def documented() -> dict[str, str]:
    """Action name -> its undo column, from the README's action tables."""
    rows = (ROW.match(line) for line in README.read_text(encoding="utf-8").splitlines())
    return {row.group(1): row.group(2).strip() for row in rows if row}


def test_the_readme_documents_exactly_the_registered_actions() -> None:
    names = {name for name, action in registered().items() if action.system in SYSTEMS}
    assert set(documented()) == names


def test_each_action_declares_its_contract_as_documented() -> None:
    for name, undo in documented().items():
        action = registered()[name]
        assert name.split(".")[0] == action.system, name
        assert action.permissions and action.description, name
        assert issubclass(action.params_model, BaseModel), name
        # the undo column says "none" exactly for the actions that cannot be undone
        assert action.reversible is not undo.startswith("none"), name
