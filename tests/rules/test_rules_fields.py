"""Field getters: the two-part fast path reads what the general walk reads."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from detector.rules.fields import MISSING, _walk, compile_getter

NESTED = st.recursive(
    st.one_of(st.none(), st.integers(0, 2), st.sampled_from(["x", "y"])),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(["a", "b", "a.b", "c"]), children, max_size=3),
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["a", "b", "a.b", "c"]), NESTED, max_size=4))
def test_two_part_paths_read_as_the_general_walk(record: dict[str, Any]) -> None:
    splits = (((2, "a.b"), (1, "a")), ((2, "b"),))
    exact = record.get("a.b", MISSING)
    expected = exact if exact is not MISSING else _walk(record, splits, 0, 2)
    assert compile_getter("a.b")(record) == expected
