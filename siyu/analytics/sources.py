"""Where a customer came from: the *source* (kind, id) decoded from a relation's WeCom ``state``.

Analytics keys every number by source and never imports the apps that own the sources
(channel codes, fission campaigns, …). Those apps register here instead:

- ``source_kind(kind, label)`` names a kind ("渠道码");
- ``source_names(kind)`` decorates ``resolve(ids) -> {id: name}``, asked lazily, in one batch,
  when a report is shown (a source whose row is gone keeps its fallback label "渠道码 #42");
- ``scan_event(event_type, kind, resolve)`` says an event type is a scan of a source of ``kind``
  (``resolve(event)`` returns the source id or None; a ``staff_userid`` in the payload names the
  member, else the scan counts company-wide only). WeCom has no scan callback, so only sources
  with such an event (e.g. an H5 visit) have scan numbers; the others show none.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from siyu.channels.state import state_decode
from siyu.core.models import Event

SourceKey = tuple[str, str]
# Adds without a state Siyu wrote (a member's own QR code, another tool's contact way).
NO_SOURCE: SourceKey = ("", "")

NameResolver = Callable[[list[str]], dict[str, str]]
ScanResolver = Callable[[Event], str | None]


@dataclass(frozen=True)
class ScanEvent:
    kind: str
    resolve: ScanResolver


_kind_labels: dict[str, str | Promise] = {}
_name_resolvers: dict[str, NameResolver] = {}
_scan_events: dict[str, ScanEvent] = {}


def source_kind(kind: str, label: str | Promise) -> None:
    _kind_labels[kind] = label


def source_names(kind: str) -> Callable[[NameResolver], NameResolver]:
    def register(func: NameResolver) -> NameResolver:
        _name_resolvers[kind] = func
        return func

    return register


def model_names(model: Any, ids: list[str]) -> dict[str, str]:
    """A resolver's usual body: ``{id: name}`` of the tenant's rows of ``model`` among ``ids``
    (ids decoded from WeCom states are text; anything not a number names nothing)."""
    pks = [int(i) for i in ids if i.isdigit()]
    rows = model.objects.filter(pk__in=pks).values_list("pk", "name")
    return {str(pk): str(name) for pk, name in rows}


def scan_event(event_type: str, kind: str, resolve: ScanResolver) -> None:
    _scan_events[event_type] = ScanEvent(kind=kind, resolve=resolve)


def scan_event_for(event_type: str) -> ScanEvent | None:
    return _scan_events.get(event_type)


def scan_event_types() -> list[str]:
    return sorted(_scan_events)


def scan_kinds() -> set[str]:
    """Kinds whose scans are known; the others have adds as their first measured step."""
    return {scan.kind for scan in _scan_events.values()}


def kinds() -> dict[str, str]:
    """Every registered kind and its label, plus "" for adds without a Siyu state."""
    return {"": _("无渠道参数"), **{kind: str(label) for kind, label in _kind_labels.items()}}


def source_of_state(state: str) -> SourceKey:
    """The source an add came through: ``("ch", "42")`` for ``ch:42``, ``("fx", "7")`` for
    ``fx:7:1093`` (the participant is not the source; the campaign is)."""
    parsed = state_decode(state)
    if parsed is None:
        return NO_SOURCE
    return parsed.kind, parsed.parts[0]


def source_labels(keys: Iterable[SourceKey]) -> dict[SourceKey, str]:
    """Display names, one resolver call per kind; fallbacks where an app has no resolver or
    the row is gone."""
    by_kind: dict[str, list[str]] = {}
    for kind, source_id in keys:
        by_kind.setdefault(kind, []).append(source_id)
    labels: dict[SourceKey, str] = {}
    for kind, ids in by_kind.items():
        resolver = _name_resolvers.get(kind)
        names = resolver(sorted(set(ids))) if resolver is not None else {}
        for source_id in ids:
            labels[(kind, source_id)] = names.get(source_id) or fallback_label((kind, source_id))
    return labels


def fallback_label(key: SourceKey) -> str:
    if key == NO_SOURCE:
        return _("无渠道参数（自然添加等）")
    kind, source_id = key
    return f"{_kind_labels.get(kind, kind)} #{source_id}"


def parse_source(text: str) -> SourceKey:
    """``"ch:42"`` → ``("ch", "42")``; ``""`` or ``"-"`` is the no-source bucket. ValueError
    for anything else."""
    if text in ("", "-"):
        return NO_SOURCE
    parsed = state_decode(text)
    if parsed is None or len(parsed.parts) != 1:
        raise ValueError(text)
    return parsed.kind, parsed.parts[0]


def format_source(key: SourceKey) -> str:
    return f"{key[0]}:{key[1]}" if key != NO_SOURCE else "-"


# Fallback labels only: the channels and fission apps register their name resolvers themselves.
source_kind("ch", gettext_lazy("渠道码"))
source_kind("fx", gettext_lazy("裂变活动"))
