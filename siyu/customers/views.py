"""Console pages of the customer core: the list, the 360 profile, lifecycle settings."""

from datetime import datetime

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts import selectors as org_selectors
from siyu.accounts.models import AccountKind, StaffMember
from siyu.accounts.permissions import Action, access_customer, access_staff_member, can
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.core.events import event_types
from siyu.customers import attributes, lifecycle, merging, selectors
from siyu.customers.models import CustomField, FieldKind, LifecycleRule
from siyu.tags.models import TagGroup

PAGE_SIZE = 50


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@console_page(Action.CUSTOMERS_VIEW)
def customer_list(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:64]
    stage = request.GET.get("stage", "")[:32]
    staff_id = _int(request.GET.get("staff"))
    unassigned = request.GET.get("unassigned") == "1"
    customers = selectors.customer_list(
        actor=staff, query=query, stage=stage, staff_id=staff_id, unassigned=unassigned
    ).prefetch_related("relations__staff", "tags__tag")
    page = Paginator(customers, PAGE_SIZE).get_page(request.GET.get("page"))
    stages = lifecycle.stages()
    names = {s.key: s.name for s in stages}
    for customer in page:
        customer.stage_name = names.get(customer.stage, customer.stage)  # type: ignore[attr-defined]
        # One badge per tag, though a tag may sit on several of the customer's relations.
        customer.tag_names = sorted({t.tag.name for t in customer.tags.all()})  # type: ignore[attr-defined]
    return render(
        request,
        "customers/list.html",
        {
            "page": page,
            "query": query,
            "stage": stage,
            "staff_id": staff_id,
            "unassigned": unassigned,
            "stages": stages,
            "members": org_selectors.staff_list(actor=staff),
        },
    )


@console_page(Action.CUSTOMERS_VIEW)
def customer_detail(request: HttpRequest, staff: StaffMember, customer_id: int) -> HttpResponse:
    profile = selectors.customer_profile(actor=staff, customer_id=customer_id)
    types = [t for t in request.GET.getlist("type") if t]
    before = request.GET.get("before")
    try:
        cursor = datetime.fromisoformat(before) if before else None
        timeline = selectors.customer_timeline(
            actor=staff, customer_id=customer_id, types=types, before=cursor
        )
    except ValueError:
        raise InvalidInput(_("时间线筛选条件无效")) from None
    context = {
        "c": profile,
        "timeline": timeline,
        "types": types,
        "event_types": event_types(),
        "stages": lifecycle.stages(),
        "taxonomy": TagGroup.objects.prefetch_related("tags"),
        "can_edit": can(staff, Action.CUSTOMERS_EDIT),
        "can_merge": can(staff, Action.CUSTOMERS_MERGE),
        "mobile": request.GET.get("m") == "1",
    }
    if request.headers.get("HX-Request") and before:
        return render(request, "customers/_timeline.html", context)
    return render(request, "customers/detail.html", context)


@require_POST
@console_page(Action.CUSTOMERS_EDIT)
def customer_update(request: HttpRequest, staff: StaffMember, customer_id: int) -> HttpResponse:
    customer = access_customer(staff, customer_id, Action.CUSTOMERS_EDIT)
    values = {
        key[len("attr_") :]: value for key, value in request.POST.items() if key.startswith("attr_")
    }
    if values:
        attributes.attributes_set(customer=customer, values=values, source="console", by=staff)
    stage = request.POST.get("stage")
    if stage:
        lifecycle.stage_set(
            customer=customer,
            stage=stage,
            source="console",
            by=staff,
            reason=request.POST.get("reason", "")[:200],
        )
    messages.success(request, _("已保存"))
    return redirect("console:customer", customer_id=customer_id)


@require_POST
@console_page(Action.CUSTOMERS_EDIT)
def customer_tags(request: HttpRequest, staff: StaffMember, customer_id: int) -> HttpResponse:
    from siyu.tags.services import customer_tags_change

    add = [int(v) for v in request.POST.getlist("add") if v.isdigit()]
    remove = [int(v) for v in request.POST.getlist("remove") if v.isdigit()]
    customer_tags_change(actor=staff, customer_id=customer_id, add=add, remove=remove)
    messages.success(request, _("标签已更新"))
    return redirect("console:customer", customer_id=customer_id)


@require_POST
@console_page(Action.CUSTOMERS_MERGE)
def customer_merge(request: HttpRequest, staff: StaffMember, customer_id: int) -> HttpResponse:
    other = _int(request.POST.get("absorbed_id"))
    if other is None:
        raise InvalidInput(_("请输入要合并的客户编号"))
    merging.customer_merge(survivor_id=customer_id, absorbed_id=other, source="console", by=staff)
    messages.success(request, _("已合并客户 #%(id)s") % {"id": other})
    return redirect("console:customer", customer_id=customer_id)


@require_POST
@console_page(Action.CUSTOMERS_MERGE)
def customer_unmerge(request: HttpRequest, staff: StaffMember, merge_id: int) -> HttpResponse:
    merge = merging.merge_undo(merge_id=merge_id, source="console", by=staff)
    messages.success(request, _("已撤销合并"))
    return redirect("console:customer", customer_id=merge.survivor_id)


@require_POST
@console_page(Action.CUSTOMERS_MERGE)
def customer_split(request: HttpRequest, staff: StaffMember, customer_id: int) -> HttpResponse:
    ids = [int(v) for v in request.POST.getlist("identity") if v.isdigit()]
    twin = merging.customer_split(
        customer_id=customer_id, identity_ids=ids, source="console", by=staff
    )
    messages.success(request, _("已拆分为新客户 #%(id)s") % {"id": twin.pk})
    return redirect("console:customer", customer_id=twin.pk)


@console_page(Action.LIFECYCLE_MANAGE)
def lifecycle_settings(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    return render(
        request,
        "customers/lifecycle.html",
        {
            "stages": lifecycle.stages(),
            "rules": LifecycleRule.objects.all(),
            "fields": CustomField.objects.all(),
            "field_kinds": FieldKind.choices,
            "event_types": event_types(),
            "members": org_selectors.staff_list(actor=staff),
            "account_kinds": AccountKind.choices,
            "matrix": selectors.account_matrix(actor=staff),
        },
    )


@require_POST
@console_page(Action.LIFECYCLE_MANAGE)
def lifecycle_update(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    """One endpoint for the settings page's small forms, told apart by ``form``."""
    form = request.POST.get("form")
    post = request.POST
    if form == "stages":
        items = [
            {"key": k.strip(), "name": n.strip()}
            for k, n in zip(post.getlist("key"), post.getlist("name"), strict=False)
            if k.strip()
        ]
        lifecycle.stages_configure(actor=staff, items=items)
    elif form == "rule":
        count = _int(post.get("min_count"))
        if count is None:
            raise InvalidInput(_("次数必须是正整数"))
        lifecycle.rule_create(
            event_type=post.get("event_type", ""), min_count=count, stage=post.get("stage", "")
        )
    elif form == "rule_delete":
        lifecycle.rule_delete(actor=staff, rule_id=_int(post.get("rule_id")) or 0)
    elif form == "field":
        attributes.field_create(
            key=post.get("key", "").strip(),
            name=post.get("name", "").strip()[:32],
            kind=post.get("kind", ""),
            choices=post.get("choices", "").replace("，", ",").split(","),
        )
    elif form == "account_kind":
        member = access_staff_member(staff, _int(post.get("member_id")) or 0)
        lifecycle.account_kind_set(actor=staff, member=member, kind=post.get("account_kind", ""))
    else:
        raise InvalidInput(_("未知的表单"))
    messages.success(request, _("已保存"))
    return redirect("console:lifecycle")
