"""The customer event log's vocabulary and subscriptions.

Apps declare the event types they emit with ``event_type`` and hang behaviour on them with
``@subscriber``; both are collected at import time of each app's ``events.py`` (loaded by
``CoreConfig.ready``). A subscriber is a plain function taking the ``Event``; it runs in a
background job inside a transaction that also marks its delivery done, so its database effects
happen exactly once. Effects outside the database must be scheduled with
``transaction.on_commit`` and be idempotent themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.functional import Promise

if TYPE_CHECKING:
    from django.db.models import Model

    from siyu.core.models import Event

ALL_EVENTS = "*"


@dataclass(frozen=True)
class EventType:
    name: str
    label: str | Promise
    webhook: bool


@dataclass(frozen=True)
class Subscriber:
    name: str
    event_types: frozenset[str]
    handler: Callable[[Event], None]
    max_attempts: int | None
    # Asked when the event is written: False means no delivery row at all (e.g. a tenant with
    # no webhook endpoints), which keeps the outbox small for subscribers that rarely apply.
    applies: Callable[[Event], bool] | None
    # The Celery queue its deliveries are first sent to (None: the default). Lanes with a
    # deadline (the welcome message's 20 s) must not wait behind bulk work's deliveries.
    queue: str | None = None

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


_event_types: dict[str, EventType] = {}
_subscribers: dict[str, Subscriber] = {}


def event_type(name: str, label: str | Promise, *, webhook: bool = True) -> str:
    """Declare an event type; ``webhook`` says whether tenants may subscribe webhooks to it."""
    existing = _event_types.get(name)
    if existing is not None and existing.label != label:
        raise ValueError(f"event type {name!r} declared twice with different labels")
    _event_types[name] = EventType(name=name, label=label, webhook=webhook)
    return name


def get_event_type(name: str) -> EventType:
    try:
        return _event_types[name]
    except KeyError:
        raise ValueError(f"unknown event type {name!r}; declare it with event_type()") from None


def event_types() -> list[EventType]:
    return sorted(_event_types.values(), key=lambda item: item.name)


def subscriber(
    *types: str,
    name: str | None = None,
    max_attempts: int | None = None,
    applies: Callable[[Event], bool] | None = None,
    queue: str | None = None,
) -> Callable[[Callable[[Event], None]], Callable[[Event], None]]:
    """Register the decorated function to run once for every event of the given types."""
    if not types:
        raise ValueError("a subscriber needs at least one event type (or ALL_EVENTS)")

    def register(func: Callable[[Event], None]) -> Callable[[Event], None]:
        sub_name = name or f"{func.__module__}.{func.__qualname__}"
        if sub_name in _subscribers and _subscribers[sub_name].handler is not func:
            raise ValueError(f"subscriber name {sub_name!r} is taken")
        _subscribers[sub_name] = Subscriber(
            name=sub_name,
            event_types=frozenset(types),
            handler=func,
            max_attempts=max_attempts,
            applies=applies,
            queue=queue,
        )
        return func

    return register


_watched: dict[tuple[str, int], tuple[int, frozenset[str]]] = {}


def watched_event_types(
    kind: str, event: Event, load: Callable[[], Iterable[str]]
) -> frozenset[str]:
    """The event types that the tenant's rules of ``kind`` (tag rules, SOP triggers, webhook
    endpoints…) watch, for an ``applies`` check that runs on every event written. Kept per
    process and reloaded when the tenant's rules version moves: one primary-key read per event
    (shared by all such checks) instead of a query per subscriber."""
    version = getattr(event, "_rules_version", None)
    if version is None:
        from siyu.core.models import Tenant

        version = (
            Tenant.objects.filter(pk=event.tenant_id).values_list("rules_version", flat=True).get()
        )
        event._rules_version = version  # type: ignore[attr-defined]
    key = (kind, event.tenant_id)
    hit = _watched.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    types = frozenset(load())
    _watched[key] = (version, types)
    return types


def rules_model(model: type[Model], *, fields: Iterable[str] = ()) -> None:
    """Saving or deleting a ``model`` row changes what some ``applies`` check watches: bump the
    tenant's rules version (in the same transaction). With ``fields``, a save that names its
    ``update_fields`` bumps only if it touches one of them (e.g. not a scheduler's cursor)."""
    from django.db.models import F
    from django.db.models.signals import post_delete, post_save

    from siyu.core.models import Tenant

    watched_fields = frozenset(fields)

    def changed(instance: Model, update_fields: Iterable[str] | None = None, **_: object) -> None:
        if watched_fields and update_fields is not None and not watched_fields & set(update_fields):
            return
        Tenant.objects.filter(pk=instance.tenant_id).update(  # type: ignore[attr-defined]
            rules_version=F("rules_version") + 1
        )

    uid = f"rules-version:{model._meta.label}"
    post_save.connect(changed, sender=model, weak=False, dispatch_uid=uid)
    post_delete.connect(changed, sender=model, weak=False, dispatch_uid=uid)


def subscribers_for(event: Event) -> list[Subscriber]:
    return [
        sub
        for sub in _subscribers.values()
        if sub.wants(event.type) and (sub.applies is None or sub.applies(event))
    ]


def get_subscriber(name: str) -> Subscriber | None:
    return _subscribers.get(name)
