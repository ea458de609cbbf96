"""Workspace pages: the member's mobile page (tasks, customers, scripts, alerts, one-tap
actions over HTMX) and the managers' pages (tasks overview, scripts library)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.customers.selectors import customer_list
from siyu.workspace import selectors, services

MOBILE_ROWS = 20


def _scripts(request: HttpRequest, staff: StaffMember) -> object:
    query = request.GET.get("q", "").strip()[:64]
    return selectors.script_list(actor=staff, query=query)[:MOBILE_ROWS]


@console_page(Action.WORKSPACE_USE)
def mobile(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    context = {
        "tasks": selectors.my_tasks(actor=staff, today=True)[:50],
        "customers": customer_list(actor=staff, staff_id=staff.pk)[:MOBILE_ROWS],
        "scripts": _scripts(request, staff),
        "alerts": selectors.my_alerts(actor=staff)[:MOBILE_ROWS],
    }
    return render(request, "workspace/mobile.html", context)


@console_page(Action.WORKSPACE_USE)
def script_search(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    return render(request, "workspace/_scripts.html", {"scripts": _scripts(request, staff)})


@require_POST
@console_page(Action.WORKSPACE_USE)
def task_done(request: HttpRequest, staff: StaffMember, task_id: int) -> HttpResponse:
    task = services.task_done(actor=staff, task_id=task_id)
    return render(request, "workspace/_task.html", {"task": task})


@require_POST
@console_page(Action.WORKSPACE_USE)
def script_use(request: HttpRequest, staff: StaffMember, script_id: int) -> HttpResponse:
    services.script_used(actor=staff, script_id=script_id)
    return HttpResponse(status=204)


@console_page(Action.TASKS_OVERVIEW)
def task_overview(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    rows = selectors.task_overview(actor=staff)
    return render(
        request,
        "workspace/overview.html",
        {"rows": rows, "days": selectors.OVERVIEW_DAYS},
    )


def _int(raw: str | None, what: str) -> int:
    text = (raw or "").strip()
    if not text.isdigit():
        raise InvalidInput(_("%(what)s 须为整数") % {"what": what})
    return int(text)


@console_page(Action.SCRIPTS_MANAGE)
def scripts_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        action = post.get("action", "")
        if action == "category":
            services.category_save(
                actor=staff,
                name=post.get("name", ""),
                order=_int(post.get("order") or "0", _("排序")),
            )
        elif action == "category_delete":
            services.category_delete(actor=staff, category_id=_int(post.get("id"), "ID"))
        elif action == "script":
            script_id = post.get("id", "").strip()
            services.script_save(
                actor=staff,
                category_id=_int(post.get("category_id"), _("场景")),
                title=post.get("title", ""),
                text=post.get("text", ""),
                script_id=_int(script_id, "ID") if script_id else None,
            )
        elif action == "script_delete":
            services.script_delete(actor=staff, script_id=_int(post.get("id"), "ID"))
        else:
            raise InvalidInput(_("未知操作"))
        messages.success(request, _("已保存"))
        return redirect(request.path)
    query = request.GET.get("q", "").strip()[:64]
    context = {
        "categories": selectors.category_list(actor=staff),
        "scripts": selectors.script_list(actor=staff, query=query),
        "q": query,
    }
    return render(request, "workspace/scripts.html", context)
