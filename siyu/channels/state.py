"""The ``state`` of a WeCom contact way: which code or campaign an add came through.

WeCom echoes a contact way's ``state`` (≤30 characters) in the add_external_contact callback.
Siyu writes it as ``<kind>:<part>[:<part>…]`` — e.g. ``ch:42`` for channel code 42, ``fx:7:1093``
for participant 1093 of fission campaign 7 — and routes each add to the handler registered for
its kind. States Siyu did not write (another tool's codes) route nowhere and stay on the
relation as they are.
"""

from collections.abc import Callable
from dataclasses import dataclass

from siyu.core.errors import InvalidInput

MAX_STATE = 30  # WeCom's limit on contact_way.state
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz")
_PART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True)
class State:
    kind: str
    parts: tuple[str, ...]


def state_encode(kind: str, *parts: str | int) -> str:
    """``kind`` (1–4 lower-case letters) and parts (letters, digits, _ or -) joined by ':'.
    Refuses what would not fit in WeCom's 30 characters or could not be decoded back."""
    if not 1 <= len(kind) <= 4 or not set(kind) <= _KIND_CHARS:
        raise InvalidInput(f"state kind {kind!r} must be 1–4 lower-case letters")
    texts = [str(part) for part in parts]
    for text in texts:
        if not text or not set(text) <= _PART_CHARS:
            raise InvalidInput(f"state part {text!r} must be letters, digits, _ or -")
    state = ":".join([kind, *texts])
    if len(state) > MAX_STATE:
        raise InvalidInput(f"state {state!r} is longer than WeCom's {MAX_STATE} characters")
    return state


def state_decode(state: str) -> State | None:
    """The parsed state, or None for states Siyu did not write."""
    if not state or len(state) > MAX_STATE or ":" not in state:
        return None
    kind, *parts = state.split(":")
    if not 1 <= len(kind) <= 4 or not set(kind) <= _KIND_CHARS:
        return None
    if not parts or any(not p or not set(p) <= _PART_CHARS for p in parts):
        return None
    return State(kind=kind, parts=tuple(parts))


AddHandler = Callable[..., None]
_handlers: dict[str, AddHandler] = {}


def state_handler(kind: str) -> Callable[[AddHandler], AddHandler]:
    """Register the function that handles adds whose state has this ``kind``. It is called as
    ``handler(relation=StaffRelation, event=Event, state=State)`` inside the event delivery's
    transaction (tenant in context), once per add event."""

    def register(func: AddHandler) -> AddHandler:
        if kind in _handlers and _handlers[kind] is not func:
            raise ValueError(f"state kind {kind!r} is taken")
        _handlers[kind] = func
        return func

    return register


def handler_for(state: str) -> tuple[AddHandler, State] | None:
    parsed = state_decode(state)
    if parsed is None or parsed.kind not in _handlers:
        return None
    return _handlers[parsed.kind], parsed
