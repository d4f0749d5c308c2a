"""The SQLite side of the differential tests: records as rows of a table, Sigma rules
converted by pySigma's SQLite backend into queries over it.

The table is built the way Zircolite builds its own: one column per field, `COLLATE NOCASE`
(Sigma strings are case-insensitive), JSON booleans as the text `true`/`false`, a missing
field and a null both NULL. Columns have TEXT affinity, or NUMERIC where a rule compares
numbers (with TEXT affinity SQLite would compare `f < 5` as text).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sigma.backends.sqlite.sqlite import sqliteBackend
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule

TABLE = "logs"


def backend(placeholders: Mapping[str, Sequence[str]] | None = None) -> Any:
    """The SQLite backend; placeholders are expanded by pySigma's value-list transformation."""
    if not placeholders:
        return sqliteBackend(table=TABLE)  # type: ignore[no-untyped-call]
    pipeline = ProcessingPipeline(
        items=[ProcessingItem(ValueListPlaceholderTransformation())],
        vars={name: list(values) for name, values in placeholders.items()},
    )
    return sqliteBackend(processing_pipeline=pipeline, table=TABLE)  # type: ignore[no-untyped-call]


def row_query(rule: SigmaRule, converter: Any) -> str:
    """The rule's query, selecting the row numbers of the matching records (a rule with a
    list of conditions has a query per condition: their union)."""
    prefix = f"SELECT * FROM {TABLE} WHERE "
    selects = []
    for query in converter.convert_rule(rule):
        assert query.startswith(prefix), query
        selects.append(f"SELECT rid FROM {TABLE} WHERE " + query.removeprefix(prefix))
    return " UNION ".join(selects)


def column_value(value: Any) -> str | None:
    """A scalar JSON value as the table stores it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def connect() -> sqlite3.Connection:
    """An in-memory database with the REGEXP function the backend's `|re` queries call."""
    database = sqlite3.connect(":memory:")
    database.create_function(
        "REGEXP", 2, lambda pattern, value: value is not None and bool(re.search(pattern, value))
    )
    return database


def sqlite_table(
    records: Sequence[Mapping[str, Any]],
    fields: Iterable[str],
    numeric: bool | Collection[str] = False,
) -> sqlite3.Connection:
    """An in-memory table `logs` with a row `rid` per record (its index) and the fields;
    `numeric` gives NUMERIC affinity to every column (True) or to the columns it names."""
    database = connect()

    def affinity(name: str) -> str:
        chosen = numeric if isinstance(numeric, bool) else name in numeric
        return "NUMERIC" if chosen else "TEXT"

    columns = "".join(f", `{name}` {affinity(name)} COLLATE NOCASE" for name in fields)
    database.execute(f"CREATE TABLE {TABLE} (rid INTEGER{columns})")
    for number, record in enumerate(records):
        names = "".join(f", `{name}`" for name in record)
        marks = ", ?" * len(record)
        values = [column_value(value) for value in record.values()]
        database.execute(f"INSERT INTO {TABLE} (rid{names}) VALUES (?{marks})", [number, *values])
    return database


def matching_rows(database: sqlite3.Connection, query: str) -> set[int]:
    return {row[0] for row in database.execute(query)}


def text_rows(database: sqlite3.Connection, fields: Iterable[str]) -> set[int]:
    """The rows where one of the fields holds text. SQLite orders every TEXT value after
    every number (sqlite.org/datatype3.html, "Sort Order"): in a NUMERIC column `f < 5` is
    false and `f > 5` true for any text it kept as text, so such rows do not answer for a
    comparison on `f`."""
    tests = " OR ".join(f"typeof(`{name}`) = 'text'" for name in fields)
    return matching_rows(database, f"SELECT rid FROM {TABLE} WHERE {tests}") if tests else set()
