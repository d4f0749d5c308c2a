"""The waits an answer asks for, and how the undo state of attempts that failed halfway adds up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from detector.respond.actions.base import merge_undo_state
from detector.respond.actions.errors import retry_after_seconds

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": " 0 "}, 0.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:27 GMT"}, 7.0),  # NOW + 7s as an HTTP date
        ({"Retry-After": "Tue, 14 Nov 2023 22:00:00 GMT"}, 0.0),  # a date past: no wait
        ({"Retry-After": "soon"}, None),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 90)}, 90.0),
        ({"RateLimit-Reset": str(int(NOW) + 12)}, 12.0),
        ({"RateLimit-Reset": str(int(NOW) - 5)}, 0.0),
        ({"Retry-After": "4", "x-ratelimit-reset": str(int(NOW) + 90)}, 4.0),
        ({}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], wait: float | None) -> None:
    assert retry_after_seconds(CIMultiDict(headers), now=NOW) == wait


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
undo_states = st.dictionaries(
    st.sampled_from(["bindings", "automount", "replicas", "schedules"]),
    json_scalars | st.lists(json_scalars, max_size=3),
    max_size=4,
)


@given(undo_states, undo_states)
def test_merged_undo_state_joins_lists_and_keeps_the_first_attempts_values(
    earlier: dict[str, object], later: dict[str, object]
) -> None:
    merged = merge_undo_state(earlier, later)  # type: ignore[arg-type]
    assert set(merged) == set(earlier) | set(later)
    for key, value in merged.items():
        if key not in earlier:
            assert value == later[key]
        elif isinstance(earlier[key], list) and isinstance(later.get(key), list):
            assert value == [*earlier[key], *later[key]]  # type: ignore[misc]
        else:
            assert value == earlier[key]
