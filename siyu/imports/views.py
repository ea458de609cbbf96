"""Console pages of 管理 → 导入导出. Thin: parse the request, call one service or selector."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, NotFound
from siyu.imports import exports, selectors, services
from siyu.imports.api import error_report_response, export_response
from siyu.imports.models import ImportStatus
from siyu.segments.selectors import saved_segment_list


@console_page(Action.CUSTOMERS_EXPORT)
def imports_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    context: dict[str, object] = {
        "segments": saved_segment_list(),
        "can_import": can(staff, Action.CUSTOMERS_IMPORT),
        "phones_masked": not can(staff, Action.VIEW_PHONE),
    }
    if context["can_import"]:
        jobs = selectors.import_job_list(actor=staff)
        context["page"] = Paginator(jobs, 20).get_page(request.GET.get("page"))
    return render(request, "imports/imports.html", context)


@require_POST
@console_page(Action.CUSTOMERS_IMPORT)
def import_upload(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    job = services.import_job_create(
        actor=staff, kind=request.POST.get("kind", ""), upload=request.FILES.get("file")
    )
    return redirect("console:import_job", job_id=job.pk)


@console_page(Action.CUSTOMERS_IMPORT)
def import_job(request: HttpRequest, staff: StaffMember, job_id: int) -> HttpResponse:
    job = selectors.access_import_job(staff, job_id)
    context = {
        "job": job,
        "active": job.status in {ImportStatus.QUEUED, ImportStatus.RUNNING},
        "errors": selectors.import_row_errors(actor=staff, job_id=job.pk)[:50],
    }
    if request.headers.get("HX-Request"):
        return render(request, "imports/_progress.html", context)
    return render(request, "imports/job.html", context)


@require_POST
@console_page(Action.CUSTOMERS_IMPORT)
def import_confirm(request: HttpRequest, staff: StaffMember, job_id: int) -> HttpResponse:
    services.import_job_confirm(actor=staff, job_id=job_id)
    messages.success(request, _("已开始导入"))
    return redirect("console:import_job", job_id=job_id)


@console_page(Action.CUSTOMERS_IMPORT)
def import_errors(request: HttpRequest, staff: StaffMember, job_id: int) -> HttpResponse:
    return error_report_response(staff, job_id)


# A download streams (StreamingHttpResponse), which console_page's type does not foresee.
@console_page(Action.CUSTOMERS_EXPORT)  # type: ignore[arg-type]
def export_download(request: HttpRequest, staff: StaffMember) -> HttpResponseBase:
    segment = request.GET.get("segment_id", "")
    try:
        started = exports.export_start(
            actor=staff,
            expression=request.GET.get("expression", "")[:2000],
            segment_id=int(segment) if segment.isdigit() else None,
            file_format=request.GET.get("format", "csv"),
        )
    except (InvalidInput, NotFound) as exc:
        # Back to the form, never to this URL without its query (that would export everyone).
        messages.error(request, exc.message)
        return redirect("console:imports")
    return export_response(started, staff.tenant)
