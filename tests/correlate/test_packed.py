"""Packed evidence gives back exactly what went in, and a log drops exactly what is old."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detector.correlate import packed
from detector.correlate.packed import Ev, Evs

#: any text, lone surrogates included (JSON cannot hold those: they take the other path)
TEXT = st.text(max_size=12)
TIMES = st.integers(min_value=-(2**62), max_value=2**62)
EVIDENCE: st.SearchStrategy[Ev] = st.tuples(
    TEXT,
    TIMES,
    TEXT,
    st.none() | TEXT,
    st.none() | TEXT,
    st.lists(st.none() | TEXT, max_size=3).map(tuple),
)
EVS: st.SearchStrategy[Evs] = st.lists(EVIDENCE, min_size=1, max_size=4).map(tuple)
#: weights as value_sum sees them: any int (beyond 64 bits too) or finite float
WEIGHTS = st.integers() | st.floats(allow_nan=False, allow_infinity=False)


@given(TIMES, EVS)
def test_a_stamp_gives_back_its_time_and_evidence(time: int, evs: Evs) -> None:
    stamp = packed.pack(time, evs)
    assert packed.time_of(stamp) == time
    assert packed.evs_of(stamp) == evs


def test_evidence_json_cannot_hold_is_kept_exactly() -> None:
    evs: Evs = (("id-\ud800", 5, "github", None, "\udcff", ("\ud83d",)),)
    assert packed.evs_of(packed.pack(1, evs)) == evs


@given(st.lists(st.tuples(TIMES, WEIGHTS, EVS), max_size=8), TIMES)
def test_a_log_drops_the_records_before_a_time_and_keeps_the_rest(
    records: list[tuple[int, int | float, Evs]], oldest: int
) -> None:
    records.sort(key=lambda record: record[0])
    log = bytearray()
    for time, weight, evs in records:
        packed.append(log, time, weight, evs)
    assert list(packed.entries(log)) == records

    dropped = packed.drop_before(log, oldest)

    old = [record for record in records if record[0] < oldest]
    assert [repr(tag) for tag in dropped] == [repr(weight) for _, weight, _ in old]
    assert list(packed.entries(log)) == records[len(old) :]
