"""Console pages for 在职继承 / 离职继承 and the transfer records. Thin: parse, call, render."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, SiyuError
from siyu.transfers import selectors, services
from siyu.transfers.models import ItemStatus
from siyu.wecom.client.errors import WeComError

PAGE_SIZE = 100


def _int(value: str | None, what: str) -> int:
    if value is None or not value.strip().isdigit():
        raise InvalidInput(_("请选择%(what)s") % {"what": what})
    return int(value)


def _optional_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _submit(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    """The transfer form of both pages: validated by the service, all or nothing."""
    try:
        customer_ids = [_int(v, _("客户")) for v in request.POST.getlist("customer_ids")]
        job = services.transfer_customers(
            actor=staff,
            handover_id=_int(request.POST.get("handover"), _("原跟进成员")),
            takeover_id=_int(request.POST.get("takeover"), _("接替成员")),
            customer_ids=customer_ids,
            chat_ids=request.POST.getlist("chat_ids"),
            message=request.POST.get("message", "").strip(),
        )
    except SiyuError as exc:
        # Nothing was sent or changed; say why and let them fix the selection.
        messages.error(request, exc.message)
        return redirect(request.get_full_path())
    messages.success(request, _("已提交继承，客户确认结果会自动更新。"))
    return redirect(f"{reverse('console:transfer_jobs')}?job={job.pk}")


@console_page(Action.TRANSFER_CUSTOMERS)
def onjob(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        return _submit(request, staff)
    members = selectors.transfer_members(actor=staff, status=StaffStatus.ACTIVE)
    handover_id = _optional_int(request.GET.get("handover"))
    query = request.GET.get("q", "")[:64]
    context: dict[str, object] = {"members": members, "handover_id": handover_id, "query": query}
    if handover_id is not None:
        customers = selectors.handover_customers(actor=staff, handover_id=handover_id, query=query)
        context["page"] = Paginator(customers, PAGE_SIZE).get_page(request.GET.get("page"))
        context["chats"] = selectors.handover_group_chats(actor=staff, handover_id=handover_id)
        context["takeovers"] = members.exclude(pk=handover_id)
    return render(request, "transfers/onjob.html", context)


@console_page(Action.TRANSFER_CUSTOMERS)
def resigned(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST" and request.POST.get("op") == "sync":
        try:
            counts = services.unassigned_sync()
        except WeComError as exc:
            messages.error(request, _("企业微信返回错误 %(code)s") % {"code": exc.errcode})
        else:
            messages.success(
                request,
                _("已同步：待分配客户 %(n)s 位，新标记离职成员 %(left)s 位")
                % {"n": counts["unassigned"], "left": counts["staff_marked_left"]},
            )
        return redirect(request.get_full_path())
    if request.method == "POST":
        return _submit(request, staff)
    handover_id = _optional_int(request.GET.get("handover"))
    query = request.GET.get("q", "")[:64]
    unassigned = selectors.unassigned_list(actor=staff, handover_id=handover_id, query=query)
    departed = selectors.transfer_members(actor=staff, status=StaffStatus.LEFT)
    return render(
        request,
        "transfers/resigned.html",
        {
            "departed": departed,
            "handover_id": handover_id,
            "query": query,
            "page": Paginator(unassigned, PAGE_SIZE).get_page(request.GET.get("page")),
            "chats": selectors.handover_group_chats(actor=staff, handover_id=handover_id)
            if handover_id is not None
            else [],
            "takeovers": selectors.transfer_members(actor=staff, status=StaffStatus.ACTIVE),
        },
    )


@console_page(Action.TRANSFER_CUSTOMERS)
def jobs(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    job_id = _optional_int(request.GET.get("job"))
    if request.method == "POST" and job_id is not None:
        job = selectors.transfer_job_get(actor=staff, job_id=job_id)
        try:
            services.transfer_job_poll(job_id=job.pk)
        except WeComError as exc:
            messages.error(request, _("企业微信返回错误 %(code)s") % {"code": exc.errcode})
        return redirect(request.get_full_path())
    context: dict[str, object] = {
        "page": Paginator(selectors.transfer_job_list(actor=staff), 50).get_page(
            request.GET.get("page")
        ),
        "statuses": ItemStatus,
    }
    if job_id is not None:
        job = selectors.transfer_job_get(actor=staff, job_id=job_id)
        context["job"] = job
        context["items"] = job.items.select_related("customer").order_by("pk")
        context["chat_items"] = job.chat_items.order_by("pk")
    return render(request, "transfers/jobs.html", context)
