"""Writes of saved segments. An expression is validated (parsed and every name resolved)
before anything is stored, so a saved segment always compiled when it was saved."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput
from siyu.segments.compiler import bind
from siyu.segments.models import SavedSegment
from siyu.segments.selectors import saved_segment_get


def _clean(name: str, expression: str, description: str) -> tuple[str, str, str]:
    name, expression, description = name.strip(), expression.strip(), description.strip()
    if not name:
        raise InvalidInput("name is required")
    bind(expression)  # raises SegmentError with the position
    return name, expression, description


def saved_segment_create(
    *, actor: StaffMember, name: str, expression: str, description: str = ""
) -> SavedSegment:
    require(actor, Action.SEGMENTS_MANAGE)
    name, expression, description = _clean(name, expression, description)
    try:
        with transaction.atomic():
            segment = SavedSegment.objects.create(
                name=name, expression=expression, description=description, created_by=actor
            )
            audit_record(
                actor=actor,
                action="segment.create",
                target=segment,
                details={"name": name, "expression": expression},
            )
    except IntegrityError:
        raise Conflict(f"a segment named {name!r} exists already") from None
    return segment


def saved_segment_update(
    *,
    actor: StaffMember,
    segment_id: int,
    name: str | None = None,
    expression: str | None = None,
    description: str | None = None,
) -> SavedSegment:
    require(actor, Action.SEGMENTS_MANAGE)
    segment = saved_segment_get(actor=actor, segment_id=segment_id)
    name, expression, description = _clean(
        segment.name if name is None else name,
        segment.expression if expression is None else expression,
        segment.description if description is None else description,
    )
    segment.name, segment.expression, segment.description = name, expression, description
    try:
        with transaction.atomic():
            segment.save()
            audit_record(
                actor=actor,
                action="segment.update",
                target=segment,
                details={"name": name, "expression": expression},
            )
    except IntegrityError:
        raise Conflict(f"a segment named {name!r} exists already") from None
    return segment


def saved_segment_delete(*, actor: StaffMember, segment_id: int) -> None:
    require(actor, Action.SEGMENTS_MANAGE)
    segment = saved_segment_get(actor=actor, segment_id=segment_id)
    with transaction.atomic():
        audit_record(
            actor=actor, action="segment.delete", target=segment, details={"name": segment.name}
        )
        segment.delete()
