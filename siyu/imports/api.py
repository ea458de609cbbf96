"""Imports (upload → preview → confirm → progress → error report) and exports."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from ninja import File, Form, Query, Router, Schema, Status, UploadedFile
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.imports import exports, selectors, services

router = Router(tags=["imports"])
export_router = Router(tags=["exports"])


class ImportJobOut(Schema):
    id: int
    kind: str
    file_name: str
    file_format: str
    encoding: str
    status: str
    total_rows: int
    processed_rows: int
    percent: int
    created_count: int
    updated_count: int
    failed_count: int
    failure: str
    ignored_columns: list[str]
    summary: dict[str, Any] = Field(
        ..., description="rows, valid, invalid, errors (first 50), new_tags, columns"
    )
    preview: list[dict[str, Any]] = Field(..., description="the first 20 rows as imported")
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ImportJobPage(PageOut):
    items: list[ImportJobOut]


class ExportIn(StrictIn):
    expression: str = Field("", max_length=2000, description="segment expression; empty = all")
    segment_id: int | None = Field(None, description="a saved segment instead of an expression")
    format: Literal["csv", "xlsx"] = "csv"


@router.post(
    "",
    response={201: ImportJobOut},
    summary="Upload a CSV or xlsx file and get its preview (nothing is imported yet)",
)
def upload(
    request: HttpRequest,
    file: File[UploadedFile | None] = None,
    kind: Form[Literal["customers", "tags"]] = "customers",
) -> Status[object]:
    job = services.import_job_create(actor=actor(request), kind=kind, upload=file)
    return Status(201, job)


@router.get("", response=ImportJobPage)
def list_jobs(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.import_job_list(actor=actor(request)), params)


@router.get("/{job_id}", response=ImportJobOut, summary="A job: its preview, status and progress")
def get_job(request: HttpRequest, job_id: int) -> object:
    return selectors.access_import_job(actor(request), job_id)


@router.post("/{job_id}/confirm", response={202: ImportJobOut})
def confirm(request: HttpRequest, job_id: int) -> Status[object]:
    return Status(202, services.import_job_confirm(actor=actor(request), job_id=job_id))


@router.get("/{job_id}/errors", summary="The bad rows of a run, as CSV")
def errors(request: HttpRequest, job_id: int) -> HttpResponse:
    return error_report_response(actor(request), job_id)


@export_router.post("", summary="Export a segment's customers as CSV (streamed) or xlsx")
def export(request: HttpRequest, payload: ExportIn) -> HttpResponseBase:
    started = exports.export_start(
        actor=actor(request),
        expression=payload.expression,
        segment_id=payload.segment_id,
        file_format=payload.format,
    )
    return export_response(started, actor(request).tenant)


def export_response(started: exports.Export, tenant: Tenant) -> HttpResponseBase:
    """The file of an export; the console's download uses it too."""
    if started.file_format == "xlsx":
        with tenant_context(tenant):
            file = exports.export_xlsx_file(started)
        return FileResponse(file, as_attachment=True, filename=started.file_name)
    response = StreamingHttpResponse(
        _in_tenant(tenant, exports.export_csv_stream(started)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{started.file_name}"'
    response["X-Export-Rows"] = str(started.rows)
    return response


def _in_tenant(tenant: Tenant, chunks: Iterator[bytes]) -> Iterator[bytes]:
    # The server reads a streamed body after the view returned and the request's tenant
    # context was reset; the stream sets its own.
    with tenant_context(tenant):
        yield from chunks


def error_report_response(staff: Any, job_id: int) -> HttpResponse:
    job = selectors.access_import_job(staff, job_id)
    rows: list[list[Any]] = [["行号", "列", "错误"]]
    rows += [
        [e.row, e.column, e.message]
        for e in selectors.import_row_errors(actor=staff, job_id=job_id)
    ]
    response = HttpResponse(exports.csv_bytes(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
