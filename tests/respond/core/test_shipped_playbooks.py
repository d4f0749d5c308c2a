"""The shipped playbooks lint clean against the actions they name, and follow the
exported JSON Schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from detector.respond.playbooks import load_playbooks, playbook_files

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = playbook_files([ROOT / "playbooks"])


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_shipped_playbook_lints_clean(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    loaded = load_playbooks([path])
    assert [str(p) for p in loaded.problems] == []
    schema = orjson.loads((ROOT / "schemas" / "playbook.schema.json").read_bytes())
    jsonschema.validate(document, schema)


def test_playbooks_are_shipped() -> None:
    assert len(SHIPPED) >= 5
