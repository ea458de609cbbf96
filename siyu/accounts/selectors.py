"""Reads of the organisation. Lists go through ``permissions.restrict``."""

from typing import Any

from django.db.models import QuerySet

from siyu.accounts.models import ApiToken, Department, StaffMember
from siyu.accounts.permissions import Action, restrict


def staff_for_user(user: Any) -> StaffMember | None:
    """The staff member a signed-in user acts as; resolves the tenant, so it is unscoped."""
    return (
        StaffMember.unscoped.select_related("tenant")
        .filter(user_id=user.pk, tenant__is_active=True)
        .first()
    )


def staff_list(
    *, actor: StaffMember, query: str = "", department_id: int | None = None
) -> QuerySet[StaffMember]:
    qs = restrict(StaffMember.objects.all(), actor, Action.ORG_VIEW, owner_field="id")
    if query:
        qs = qs.filter(name__icontains=query) | qs.filter(userid__icontains=query)
    if department_id is not None:
        qs = qs.filter(departments__id=department_id)
    return qs.select_related("main_department").order_by("name", "userid")


def department_list(*, actor: StaffMember) -> QuerySet[Department]:
    # The tree itself is not sensitive; members and their customers are, and are restricted.
    restrict(StaffMember.objects.none(), actor, Action.ORG_VIEW, owner_field="id")
    return Department.objects.order_by("-order", "wecom_id")


def api_token_list(*, actor: StaffMember) -> QuerySet[ApiToken]:
    restrict(StaffMember.objects.none(), actor, Action.TOKENS_MANAGE, owner_field="id")
    return ApiToken.objects.select_related("staff").order_by("-created_at")
