"""State encoding fits WeCom's 30 characters and decodes back; foreign states route nowhere."""

import pytest

from siyu.channels.state import MAX_STATE, State, state_decode, state_encode
from siyu.core.errors import InvalidInput


def test_a_state_round_trips() -> None:
    state = state_encode("fx", 7, 1093)
    assert state == "fx:7:1093"
    assert state_decode(state) == State(kind="fx", parts=("7", "1093"))


@pytest.mark.parametrize(
    ("kind", "parts", "message"),
    [
        ("CH", (1,), "lower-case"),
        ("chann", (1,), "lower-case"),
        ("ch", ("a:b",), "letters, digits"),
        ("ch", ("",), "letters, digits"),
        ("ch", ("x" * MAX_STATE,), "longer than"),
    ],
)
def test_bad_or_overlong_states_are_refused(kind: str, parts: tuple, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        state_encode(kind, *parts)


@pytest.mark.parametrize("state", ["", "promo2026", "ch:", ":1", "CH:1", "ch:1:", "x" * 31])
def test_states_siyu_did_not_write_decode_to_nothing(state: str) -> None:
    assert state_decode(state) is None
