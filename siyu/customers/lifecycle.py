"""Lifecycle stages (普通 → 意向 → 付费 → 复购 → 代理), moved by rules and by hand.

Each tenant owns its list of stages; every move is a ``customer.stage_changed`` event, so the
timeline, the segment index and the dashboards all see the same history.
"""

import re

from django.db import transaction

from siyu.accounts.models import StaffMember
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.events import (
    ALL_EVENTS,
    get_event_type,
    rules_model,
    subscriber,
    watched_event_types,
)
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers import events
from siyu.customers.merging import customer_survivor
from siyu.customers.models import Customer, LifecycleRule, LifecycleStage

# Tenant data, not UI text: seeded in Chinese whatever the language of the first request.
DEFAULT_STAGES = [
    ("normal", "普通"),
    ("intent", "意向"),
    ("paid", "付费"),
    ("repeat", "复购"),
    ("agent", "代理"),
]
DEFAULT_STAGE = "normal"


def stages() -> list[LifecycleStage]:
    """The tenant's stages in order, seeded with the defaults on first use."""
    rows = list(LifecycleStage.objects.all())
    if rows:
        return rows
    tenant = get_current_tenant()
    with transaction.atomic():
        LifecycleStage.objects.bulk_create(
            [
                LifecycleStage(tenant=tenant, key=key, name=name, order=i)
                for i, (key, name) in enumerate(DEFAULT_STAGES)
            ],
            ignore_conflicts=True,  # a concurrent first use seeded them already
        )
    return list(LifecycleStage.objects.all())


def stage_order() -> dict[str, int]:
    return {stage.key: stage.order for stage in stages()}


def stages_configure(*, actor: StaffMember, items: list[dict[str, str]]) -> list[LifecycleStage]:
    """Replace the tenant's stages by ``items`` ([{key, name}], in order). A stage that still
    holds customers cannot be removed: move them first."""
    keys = [item["key"] for item in items]
    if not items:
        raise InvalidInput("at least one stage is required")
    for item in items:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", item["key"]):
            raise InvalidInput(f"bad stage key {item['key']!r}: lower-case letters, digits, _")
        if not 1 <= len(item["name"]) <= 32:
            raise InvalidInput("stage names are 1–32 characters")
    if len(set(keys)) != len(keys):
        raise InvalidInput("stage keys must be unique")
    current = {stage.key for stage in stages()}
    removed = current - set(keys)
    in_use = sorted(
        key for key in removed if Customer.objects.filter(stage=key, merged_into=None).exists()
    )
    if in_use:
        raise Conflict(f"stages still hold customers: {', '.join(in_use)}; move them first")
    used_by_rules = sorted(
        set(LifecycleRule.objects.filter(stage__in=removed).values_list("stage", flat=True))
    )
    if used_by_rules:
        raise Conflict(f"lifecycle rules still move customers to: {', '.join(used_by_rules)}")
    from siyu.audit.services import audit_record

    with transaction.atomic():
        LifecycleStage.objects.filter(key__in=removed).delete()
        for order, item in enumerate(items):
            LifecycleStage.objects.update_or_create(
                key=item["key"], defaults={"name": item["name"], "order": order}
            )
        audit_record(actor=actor, action="lifecycle.configure", details={"stages": keys})
    return stages()


def stage_set(
    *,
    customer: Customer,
    stage: str,
    source: str,
    by: StaffMember | None = None,
    reason: str = "",
    idempotency_key: str | None = None,
) -> bool:
    """Move ``customer`` to ``stage``; False if they are there already."""
    if stage not in stage_order():
        raise InvalidInput(f"unknown lifecycle stage {stage!r}")
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.stage == stage:
            return False
        previous = locked.stage
        Customer.objects.filter(pk=customer.pk).update(stage=stage)
        customer.stage = stage
        event_record(
            type=events.CUSTOMER_STAGE_CHANGED,
            source=source,
            customer_id=customer.pk,
            idempotency_key=idempotency_key,
            payload={
                "from": previous,
                "to": stage,
                "by": by.userid if by else "",
                "reason": reason,
            },
        )
    return True


def rule_create(*, event_type: str, min_count: int, stage: str) -> LifecycleRule:
    try:
        get_event_type(event_type)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if min_count < 1:
        raise InvalidInput("min_count must be at least 1")
    if stage not in stage_order():
        raise InvalidInput(f"unknown lifecycle stage {stage!r}")
    if LifecycleRule.objects.filter(event_type=event_type, min_count=min_count).exists():
        raise Conflict(f"a rule for {event_type} × {min_count} exists already")
    return LifecycleRule.objects.create(event_type=event_type, min_count=min_count, stage=stage)


def rule_delete(*, actor: StaffMember, rule_id: int) -> None:
    from siyu.audit.services import audit_record

    rule = LifecycleRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("rule not found")
    with transaction.atomic():
        audit_record(actor=actor, action="lifecycle.rule_delete", target=rule, details={})
        rule.delete()


rules_model(LifecycleRule)


def _has_rule(event: Event) -> bool:
    return event.customer_id is not None and event.type in watched_event_types(
        "customers.lifecycle_rules",
        event,
        lambda: LifecycleRule.unscoped.filter(tenant_id=event.tenant_id, enabled=True).values_list(
            "event_type", flat=True
        ),
    )


@subscriber(ALL_EVENTS, name="customers.lifecycle_rules", applies=_has_rule)
def apply_lifecycle_rules(event: Event) -> None:
    """Move the customer to the furthest stage their count of this event type has earned."""
    if event.customer_id is None:
        return
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is None:
        return
    customer = customer_survivor(customer)  # the event may name a record merged away since
    count = Event.objects.filter(
        customer_id__in=customer_record_ids(customer), type=event.type
    ).count()
    order = stage_order()
    earned = [
        rule.stage
        for rule in LifecycleRule.objects.filter(
            event_type=event.type, enabled=True, min_count__lte=count
        )
        if rule.stage in order
    ]
    if not earned:
        return
    target = max(earned, key=order.__getitem__)
    if order[target] > order.get(customer.stage, -1):
        stage_set(
            customer=customer,
            stage=target,
            source="system",
            reason=f"{event.type}×{count}",
            idempotency_key=f"lifecycle:{event.pk}",
        )


def customer_record_ids(customer: Customer) -> list[int]:
    """The customer's id and the ids of every record merged into it (their events are its)."""
    ids = [customer.pk]
    frontier = [customer.pk]
    while frontier:
        frontier = list(
            Customer.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True)
        )
        ids.extend(frontier)
    return ids


def account_kind_set(*, actor: StaffMember, member: StaffMember, kind: str) -> StaffMember:
    """Mark what job a staff account does (IP号 / 成交号 / 会员号 / 代理号)."""
    from siyu.accounts.models import AccountKind
    from siyu.audit.services import audit_record

    if kind not in AccountKind.values:
        raise InvalidInput(f"unknown account kind {kind!r}")
    previous = member.account_kind
    with transaction.atomic():
        member.account_kind = kind
        member.save(update_fields=["account_kind"])
        audit_record(
            actor=actor,
            action="staff.account_kind",
            target=member,
            details={"from": previous, "to": kind},
        )
    return member
