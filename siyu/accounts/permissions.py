"""The one place that decides who may do what, and which rows they may see.

Two questions, answered here and nowhere else:
- *May this member perform this action?* — ``can`` / ``require``, from the role table below.
- *Which rows may they see?* — ``visible_staff_ids`` and ``restrict``, from their data scope
  (company / own department subtree / own customers). Rows are owned by staff members; a list
  or lookup passes the queryset and the path to the owning member's id.

Missing and forbidden rows answer alike (``NotFound``) so ids across scopes leak nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from django.db.models import Model, QuerySet

from siyu.accounts.models import DataScope, Department, Role, StaffMember, StaffStatus
from siyu.core.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from siyu.customers.models import Customer


class Action(StrEnum):
    WORKSPACE_USE = "workspace.use"
    ORG_VIEW = "org.view"
    ORG_MANAGE = "org.manage"
    AUDIT_VIEW = "audit.view"
    EVENTS_VIEW = "events.view"
    EVENTS_RETRY = "events.retry"
    WEBHOOKS_MANAGE = "webhooks.manage"
    TOKENS_MANAGE = "tokens.manage"
    SETTINGS_MANAGE = "settings.manage"
    CUSTOMERS_VIEW = "customers.view"
    CUSTOMERS_EDIT = "customers.edit"  # tags, stage, fields of customers in scope
    CUSTOMERS_MERGE = "customers.merge"
    LIFECYCLE_MANAGE = "lifecycle.manage"  # stages, custom fields, account kinds
    TRANSFER_CUSTOMERS = "customers.transfer"  # 在职/离职继承, within the data scope
    TAGS_MANAGE = "tags.manage"  # the team's tag taxonomy and auto-tag rules
    TAGS_QUALITY = "tags.quality"  # tagging compliance of the members in scope
    SEGMENTS_MANAGE = "segments.manage"  # saved segments (counting is CUSTOMERS_VIEW)
    CUSTOMERS_IMPORT = "customers.import"  # customers and tags from CSV / xlsx
    CUSTOMERS_EXPORT = "customers.export"  # customers in scope; audited
    VIEW_PHONE = "customers.view_phone"  # unmasked phone numbers (exports, profiles)
    FISSION_MANAGE = "fission.manage"  # fission campaigns (任务宝 / 群裂变)
    CHANNELS_MANAGE = "channels.manage"  # channel codes (渠道活码) and welcome messages
    ANALYTICS_VIEW = "analytics.view"  # channel analytics within the data scope; export audited
    ANALYTICS_SPEND = "analytics.spend"  # enter channel spend (feeds cost per customer and ROI)
    DASHBOARD_VIEW = "dashboard.view"  # role dashboards within the data scope; exports audited
    GOALS_MANAGE = "goals.manage"  # set goals on dashboard metrics (progress is DASHBOARD_VIEW)
    CONTENT_MANAGE = "content.manage"  # the content library: items, folders, link checks
    CONTENT_SHARE = "content.share"  # take tracked links from the library (own briefcase)
    SCRIPTS_MANAGE = "scripts.manage"  # the team's reply scripts library (话术库)
    TASKS_OVERVIEW = "tasks.overview"  # staff tasks of the members in scope (done on time)
    SHOP_MANAGE = "shop.manage"  # catalog, SKUs and stock, payment settings, external shops
    ORDERS_VIEW = "orders.view"  # orders of the customers in scope (and their own shop link)
    ORDERS_REFUND = "orders.refund"  # cancel and refund orders in scope
    ORDERS_IMPORT = "orders.import"  # external orders from CSV / xlsx
    SOP_MANAGE = "sop.manage"  # customer and group SOPs (journeys), their funnels
    MASS_SEND_MANAGE = "masssend.manage"  # mass sends (群发) to customers, chats, moments
    PROMOTIONS_MANAGE = "promotions.manage"  # coupons, group-buys, commission rules and ledger
    COMMISSIONS_VIEW = "commissions.view"  # commission ledger: their own (and their scope's)
    INSIGHTS_VIEW = "insights.view"  # churn, at-risk list, RFM/CLV of customers in scope
    ASSETS_VIEW = "assets.view"  # WeCom accounts as assets, inventories (in scope)
    ASSETS_MANAGE = "assets.manage"  # account lifecycle, 盘号 checks, 还号 (hand-back)
    PERFORMANCE_VIEW = "performance.view"  # GMV, commission, 2-7-1, quality checks in scope
    PERFORMANCE_MANAGE = "performance.manage"  # commission schemes and quality targets


_EVERYONE = {
    Action.WORKSPACE_USE,
    Action.ORG_VIEW,
    Action.CUSTOMERS_VIEW,
    Action.CUSTOMERS_EDIT,
    Action.CUSTOMERS_EXPORT,
    Action.DASHBOARD_VIEW,
    Action.CONTENT_SHARE,
    Action.ORDERS_VIEW,
    Action.COMMISSIONS_VIEW,
    Action.INSIGHTS_VIEW,
    Action.PERFORMANCE_VIEW,
}
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.BOSS: frozenset(set(Action)),
    Role.ADMIN: frozenset(set(Action)),
    Role.OPERATIONS: frozenset(
        _EVERYONE
        | {Action.EVENTS_VIEW, Action.CUSTOMERS_MERGE, Action.LIFECYCLE_MANAGE}
        | {Action.TAGS_MANAGE, Action.TAGS_QUALITY}
        | {Action.SEGMENTS_MANAGE}
        | {Action.CUSTOMERS_IMPORT}
        | {Action.FISSION_MANAGE}
        | {Action.CHANNELS_MANAGE}
        | {Action.CONTENT_MANAGE}
        | {Action.ANALYTICS_VIEW, Action.ANALYTICS_SPEND}
        | {Action.GOALS_MANAGE}
        | {Action.SCRIPTS_MANAGE, Action.TASKS_OVERVIEW}
        | {Action.SHOP_MANAGE, Action.ORDERS_REFUND, Action.ORDERS_IMPORT}
        | {Action.SOP_MANAGE}
        | {Action.MASS_SEND_MANAGE}
        | {Action.PROMOTIONS_MANAGE}
    ),
    Role.MANAGER: frozenset(
        _EVERYONE
        | {Action.CUSTOMERS_MERGE, Action.TRANSFER_CUSTOMERS, Action.TAGS_QUALITY}
        | {Action.ANALYTICS_VIEW}
        | {Action.SCRIPTS_MANAGE, Action.TASKS_OVERVIEW}
        | {Action.ORDERS_REFUND}
        | {Action.ASSETS_VIEW}
    ),
    Role.STAFF: frozenset(_EVERYONE),
}

DEFAULT_SCOPE: dict[str, str] = {
    Role.BOSS: DataScope.COMPANY,
    Role.ADMIN: DataScope.COMPANY,
    Role.OPERATIONS: DataScope.COMPANY,
    Role.MANAGER: DataScope.DEPARTMENT,
    Role.STAFF: DataScope.OWN,
}


def can(staff: StaffMember | None, action: Action) -> bool:
    if staff is None or staff.status != StaffStatus.ACTIVE:
        return False
    return action in ROLE_ACTIONS.get(staff.role, frozenset())


def require(staff: StaffMember | None, action: Action) -> StaffMember:
    if staff is None:
        raise PermissionDenied("sign in first")
    if not can(staff, action):
        raise PermissionDenied(f"your role may not do this ({action})")
    return staff


def effective_scope(staff: StaffMember) -> str:
    return staff.data_scope or DEFAULT_SCOPE[staff.role]


def department_subtree_ids(root_ids: set[int]) -> set[int]:
    """The given departments and all their descendants (tenant in context)."""
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in Department.objects.values_list("id", "parent_id"):
        children.setdefault(parent_id, []).append(dept_id)
    result: set[int] = set()
    stack = list(root_ids)
    while stack:
        dept_id = stack.pop()
        if dept_id in result:
            continue
        result.add(dept_id)
        stack.extend(children.get(dept_id, []))
    return result


def visible_staff_ids(staff: StaffMember) -> set[int] | None:
    """Ids of the members whose rows ``staff`` may see; ``None`` means the whole company."""
    scope = effective_scope(staff)
    if scope == DataScope.COMPANY:
        return None
    if scope == DataScope.DEPARTMENT:
        roots = set(staff.departments.values_list("id", flat=True))
        if staff.main_department_id is not None:
            roots.add(staff.main_department_id)
        depts = department_subtree_ids(roots)
        ids = set(StaffMember.objects.filter(departments__in=depts).values_list("id", flat=True))
        return ids | {staff.pk}
    return {staff.pk}


def restrict[M: Model](
    queryset: QuerySet[M], staff: StaffMember, action: Action, *, owner_field: str
) -> QuerySet[M]:
    """Narrow ``queryset`` to the rows ``staff`` may act on; ``owner_field`` is the lookup path
    to the owning member's id (``"id"`` for staff themselves, ``"owner_id"``, …)."""
    require(staff, action)
    ids = visible_staff_ids(staff)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{owner_field}__in": ids}).distinct()


def restrict_customers(
    queryset: QuerySet[Customer], staff: StaffMember, action: Action = Action.CUSTOMERS_VIEW
) -> QuerySet[Customer]:
    """Customers ``staff`` may act on: those with a relation (in any state, so a customer who
    deleted a member stays visible to the people responsible) to a member in their scope.
    Merged-away records are never listed; their survivor is."""
    from siyu.customers.models import StaffRelation

    require(staff, action)
    queryset = queryset.filter(merged_into__isnull=True)
    ids = visible_staff_ids(staff)
    if ids is None:
        return queryset
    # A subquery, not a join: no duplicate rows and no DISTINCT over a large table.
    owned = StaffRelation.objects.filter(staff_id__in=ids).values("customer_id")
    return queryset.filter(pk__in=owned)


def access_customer(
    staff: StaffMember, customer_id: int, action: Action = Action.CUSTOMERS_VIEW
) -> Customer:
    from siyu.customers.models import Customer

    customer = restrict_customers(Customer.objects.all(), staff, action).filter(pk=customer_id)
    found = customer.first()
    if found is None:
        raise NotFound("customer not found")
    return found


def access_staff_member(staff: StaffMember, member_id: int, *, write: bool = False) -> StaffMember:
    action = Action.ORG_MANAGE if write else Action.ORG_VIEW
    member = (
        restrict(StaffMember.objects.all(), staff, action, owner_field="id")
        .filter(pk=member_id)
        .first()
    )
    if member is None:
        raise NotFound("staff member not found")
    return member
