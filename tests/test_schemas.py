"""The committed JSON Schemas are exactly what the models export."""

from __future__ import annotations

from pathlib import Path

from detector import schemas

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def test_committed_schemas_equal_the_models() -> None:
    for name, document in schemas.documents().items():
        committed = SCHEMA_DIR / name
        assert committed.exists(), f"{committed} is missing: run `detector schema export`"
        assert committed.read_bytes() == document, (
            f"{committed} differs from the model: run `detector schema export` and commit it"
        )
