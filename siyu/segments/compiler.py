"""From an AST to something the tenant's data can answer.

``bind`` resolves every name against the tenant in context (tags, stages, custom fields, staff
members, registered event types) and rejects unknown ones with their position; the bound tree
is what both engines evaluate: ``to_q`` compiles it to a Django ``Q`` over ``Customer`` (works on
SQLite and PostgreSQL), and the bitmap index walks it in memory (``siyu.segments.index``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import BigIntegerField, Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.core.events import get_event_type
from siyu.core.models import Event
from siyu.customers.lifecycle import stages
from siyu.customers.models import (
    Customer,
    CustomField,
    FieldKind,
    RelationStatus,
    StaffRelation,
)
from siyu.segments import language as ast
from siyu.segments.errors import SegmentError
from siyu.tags.models import CustomerTag, Tag

# ---- the bound tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HasTags:
    """Carries any of these tags (one name may be one tag in each of several groups)."""

    tag_ids: frozenset[int]


@dataclass(frozen=True)
class InStage:
    key: str


@dataclass(frozen=True)
class FollowedBy:
    """Has an active relation with this staff member."""

    staff_id: int


@dataclass(frozen=True)
class FirstAdded:
    """The first active relation was added on a local day in [since, before)."""

    since: date | None
    before: date | None


@dataclass(frozen=True)
class SqlOnly:
    """A condition only the database can answer (attributes, behaviour counts): the ids of the
    customers that satisfy it, as a subquery."""

    ids: QuerySet[Any]


@dataclass(frozen=True)
class BAnd:
    items: tuple[Bound, ...]


@dataclass(frozen=True)
class BOr:
    items: tuple[Bound, ...]


@dataclass(frozen=True)
class BNot:
    item: Bound


BoundLeaf = HasTags | InStage | FollowedBy | FirstAdded | SqlOnly
Bound = BAnd | BOr | BNot | BoundLeaf


def local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def days_ago(days: int) -> date:
    """The first local day of "the last ``days`` days", today included (近7天 = today + 6)."""
    return timezone.localdate() - timedelta(days=days - 1)


# ---- binding ----------------------------------------------------------------------------------


class _Binder:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._tags: dict[str, list[tuple[str, int]]] | None = None
        self._fields: dict[str, CustomField] | None = None

    def error(self, message: str, pos: int) -> SegmentError:
        return SegmentError(message, expression=self.expression, position=pos)

    def bind(self, node: ast.Node) -> Bound:
        if isinstance(node, ast.And):
            return BAnd(tuple(self.bind(item) for item in node.items))
        if isinstance(node, ast.Or):
            return BOr(tuple(self.bind(item) for item in node.items))
        if isinstance(node, ast.Not):
            return BNot(self.bind(node.item))
        if isinstance(node, ast.TagIs):
            return HasTags(self.tag_ids(node))
        if isinstance(node, ast.StageIs):
            keys = [stage.key for stage in stages()]
            if node.key not in keys:
                known = ", ".join(keys)
                raise self.error(f"unknown stage {node.key!r} (stages: {known})", node.pos)
            return InStage(node.key)
        if isinstance(node, ast.StaffIs):
            staff_id = (
                StaffMember.objects.filter(userid=node.userid).values_list("pk", flat=True).first()
            )
            if staff_id is None:
                raise self.error(f"unknown staff member {node.userid!r}", node.pos)
            return FollowedBy(staff_id)
        if isinstance(node, ast.AddedWithin):
            return FirstAdded(since=days_ago(node.days), before=None)
        if isinstance(node, ast.AddedBefore):
            return FirstAdded(since=None, before=node.day)
        if isinstance(node, ast.AddedAfter):
            return FirstAdded(since=node.day, before=None)
        if isinstance(node, ast.AttrCompare):
            return self.attr(node)
        return self.event_count(node)

    def tag_ids(self, node: ast.TagIs) -> frozenset[int]:
        if self._tags is None:
            self._tags = {}
            for tag_id, name, group in Tag.objects.values_list("pk", "name", "group__name"):
                self._tags.setdefault(name, []).append((group, tag_id))
        # "组/名" picks the tag in one group; a bare name means that tag in whichever group.
        if node.name in self._tags:
            return frozenset(tag_id for _, tag_id in self._tags[node.name])
        group, _, name = node.name.partition("/")
        ids = frozenset(tag_id for g, tag_id in self._tags.get(name, []) if g == group)
        if not ids:
            raise self.error(f"unknown tag {node.name!r}", node.pos)
        return ids

    def attr(self, node: ast.AttrCompare) -> Bound:
        if self._fields is None:
            self._fields = {field.key: field for field in CustomField.objects.all()}
        field = self._fields.get(node.key)
        if field is None:
            known = ", ".join(sorted(self._fields)) or "none defined"
            raise self.error(f"unknown field attr.{node.key} (fields: {known})", node.pos)
        value = self.attr_value(field, node)
        if node.op in {"=", "!="}:
            lookup = "exact"
        elif field.kind in {FieldKind.NUMBER, FieldKind.DATE}:
            lookup = _LOOKUPS[node.op]
        else:
            raise self.error(
                f"attr.{node.key} is {field.kind}: compare it with = or !=", node.value_pos
            )
        ids = (
            Customer.objects.annotate(_value=KeyTransform(node.key, "attributes"))
            .filter(**{f"_value__{lookup}": value})
            .values_list("pk", flat=True)
        )
        # "!=" is "not =": customers without the field are included, as everywhere else.
        return BNot(SqlOnly(ids)) if node.op == "!=" else SqlOnly(ids)

    def attr_value(self, field: CustomField, node: ast.AttrCompare) -> object:
        value = node.value
        if field.kind == FieldKind.NUMBER:
            if not isinstance(value, Decimal):
                raise self.error(f"attr.{node.key} is a number field", node.value_pos)
            return int(value) if value == value.to_integral_value() else float(value)
        if field.kind == FieldKind.DATE:
            if isinstance(value, str):
                try:
                    value = date.fromisoformat(value)
                except ValueError:
                    raise self.error(
                        f"attr.{node.key} is a date field (2026-01-01)", node.value_pos
                    ) from None
            if not isinstance(value, date):
                raise self.error(f"attr.{node.key} is a date field (2026-01-01)", node.value_pos)
            return value.isoformat()  # stored as ISO text, which sorts like the date
        if not isinstance(value, str):
            raise self.error(f"attr.{node.key} is a text field: quote the value", node.value_pos)
        if field.kind == FieldKind.CHOICE and value not in field.choices:
            raise self.error(
                f"{value!r} is not a choice of attr.{node.key} ({', '.join(field.choices)})",
                node.value_pos,
            )
        return value

    def event_count(self, node: ast.EventCount) -> Bound:
        try:
            get_event_type(node.event_type)
        except ValueError:
            raise self.error(f"unknown event type {node.event_type!r}", node.pos) from None
        # Events stay on the record they were written for; a merged-away record's events count
        # for the customer it was merged into.
        owner = Coalesce(
            Subquery(
                Customer.objects.filter(pk=OuterRef("customer_id")).values("merged_into_id")[:1]
            ),
            F("customer_id"),
            output_field=BigIntegerField(),
        )
        per_customer = (
            Event.objects.filter(
                type=node.event_type,
                occurred_at__gte=local_midnight(days_ago(node.days)),
                customer_id__isnull=False,
            )
            .annotate(owner=owner)
            .values("owner")
            .annotate(n=Count("id"))
        )
        if node.op == "!=":
            satisfied = ~Q(n=node.count)
        else:
            satisfied = Q(**{f"n__{_LOOKUPS[node.op]}": node.count})
        if _compare(0, node.op, node.count):
            # Customers without any such event count as 0 and match: everyone except those
            # whose non-zero count fails the comparison.
            return BNot(SqlOnly(per_customer.filter(~satisfied).values_list("owner", flat=True)))
        return SqlOnly(per_customer.filter(satisfied).values_list("owner", flat=True))


_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _compare(left: int, op: str, right: int) -> bool:
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def bind(expression: str) -> Bound:
    """Parse and resolve ``expression`` for the tenant in context; raises ``SegmentError``."""
    return _Binder(expression).bind(ast.parse(expression))


# ---- SQL --------------------------------------------------------------------------------------


def to_q(node: Bound) -> Q:
    """Set conditions become EXISTS / NOT EXISTS: PostgreSQL turns them into semi- and
    anti-joins, where ``NOT (id IN (…))`` over millions of rows would not fit a hashed plan."""
    if isinstance(node, BAnd):
        q = Q()
        for item in node.items:
            q &= to_q(item)
        return q
    if isinstance(node, BOr):
        q = Q()
        for item in node.items:
            q |= to_q(item)
        return q
    if isinstance(node, BNot):
        return ~to_q(node.item)
    if isinstance(node, HasTags):
        tagged = CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag_id__in=node.tag_ids)
        return Q(Exists(tagged))
    if isinstance(node, InStage):
        return Q(stage=node.key)
    active = StaffRelation.objects.filter(customer_id=OuterRef("pk"), status=RelationStatus.ACTIVE)
    if isinstance(node, FollowedBy):
        return Q(Exists(active.filter(staff_id=node.staff_id)))
    if isinstance(node, FirstAdded):
        # min(added_at) in [since, before) ⇔ some add, one before ``before``, none before since.
        added = active.filter(added_at__isnull=False)
        q = Q(Exists(added))
        if node.before is not None:
            q &= Q(Exists(added.filter(added_at__lt=local_midnight(node.before))))
        if node.since is not None:
            q &= ~Q(Exists(added.filter(added_at__lt=local_midnight(node.since))))
        return q
    return Q(pk__in=node.ids)
