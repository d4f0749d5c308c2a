"""A bounded memo keeps what it was given until it is full, then starts over."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detector.memo import LONGEST_TEXT, remember, remember_text


@given(st.lists(st.integers(0, 50)), st.integers(1, 8))
def test_a_memo_holds_the_latest_values_and_never_more_than_its_limit(
    keys: list[int], limit: int
) -> None:
    memo: dict[int, str] = {}
    for key in keys:
        assert remember(memo, key, f"value of {key}", limit) == f"value of {key}"
        assert memo[key] == f"value of {key}"
        assert len(memo) <= limit


def test_a_full_memo_starts_over_with_the_new_entry() -> None:
    memo = {1: "a", 2: "b"}
    remember(memo, 3, "c", 2)
    assert memo == {3: "c"}


@given(st.text(max_size=LONGEST_TEXT + 8))
def test_a_text_is_remembered_only_up_to_the_longest_length(text: str) -> None:
    memo: dict[str, int] = {}
    assert remember_text(memo, text, len(text), 4) == len(text)
    assert (text in memo) == (len(text) <= LONGEST_TEXT)
