"""Work that cannot wait for the inbox's turn: a welcome code lives 20 s.

A burst of adds fills the ``callbacks`` queue faster than the full processing (customer,
relation, events, their subscribers) drains it, so a welcome sent at the end of that path misses
its window. An add callback carrying a ``WelcomeCode`` is therefore also handed, right after its
inbox row is committed, to the listeners registered here, on the ``welcome`` queue. A listener
needs nothing the processing creates; the processing path still runs later and must tolerate
(and link to) whatever the listener did — the listener's job may be lost with a broker outage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from siyu.wecom.models import CallbackInbox


@dataclass(frozen=True)
class WelcomeCodeArrived:
    userid: str
    external_userid: str
    state: str
    welcome_code: str
    at: datetime  # WeCom's CreateTime: the code's 20 s run from here

    @classmethod
    def of(cls, item: CallbackInbox) -> WelcomeCodeArrived | None:
        data = item.data
        if item.change_type != "add_external_contact" or not data.get("WelcomeCode"):
            return None
        return cls(
            userid=str(data.get("UserID", "")),
            external_userid=str(data.get("ExternalUserID", "")),
            state=str(data.get("State") or ""),
            welcome_code=str(data["WelcomeCode"]),
            at=item.create_time,
        )

    def dump(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}

    @classmethod
    def load(cls, raw: dict[str, Any]) -> WelcomeCodeArrived:
        return cls(**{**raw, "at": datetime.fromisoformat(raw["at"])})


Listener = Callable[[WelcomeCodeArrived], object]
_listeners: list[Listener] = []


def welcome_code_listener(func: Listener) -> Listener:
    """Register ``func`` to run (tenant in context) for every welcome code that arrives."""
    if func not in _listeners:
        _listeners.append(func)
    return func


def welcome_code_dispatch(arrival: WelcomeCodeArrived) -> None:
    for listener in _listeners:
        listener(arrival)
