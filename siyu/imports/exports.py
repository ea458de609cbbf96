"""Exports: any segment (an expression or a saved one) as CSV or xlsx, within the caller's data
scope, phones masked unless their role may see them, and every export audited.

Rows are read in primary-key chunks with their identities, tags and relations prefetched per
chunk, so memory stays flat whatever the segment's size; CSV is streamed as it is produced.
"""

import csv
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can, require, restrict_customers
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.customers.lifecycle import stages
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    CustomField,
    IdentityKind,
    RelationStatus,
    StaffRelation,
)
from siyu.segments.selectors import saved_segment_get, segment_customers
from siyu.tags.models import CustomerTag

FORMATS = ("csv", "xlsx")
CHUNK = 1000
# A cell starting with one of these is a formula to Excel and WPS (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Export:
    customers: QuerySet[Customer]
    rows: int
    file_format: str
    file_name: str
    mask_phones: bool


def export_start(
    *,
    actor: StaffMember,
    expression: str = "",
    segment_id: int | None = None,
    file_format: str = "csv",
) -> Export:
    """Resolve what will be exported and audit it (who, which segment, how many rows) before a
    byte leaves. An empty expression means every customer in the caller's scope."""
    require(actor, Action.CUSTOMERS_EXPORT)
    if file_format not in FORMATS:
        raise InvalidInput(_("导出格式必须是 csv 或 xlsx"))
    if segment_id is not None and expression:
        raise InvalidInput(_("表达式和已保存的分群只能选一个"))
    segment_name = ""
    if segment_id is not None:
        segment = saved_segment_get(segment_id=segment_id)
        expression, segment_name = segment.expression, segment.name
    customers = segment_customers(expression) if expression.strip() else Customer.objects.all()
    customers = restrict_customers(customers, actor, Action.CUSTOMERS_EXPORT)
    rows = customers.count()
    mask = not can(actor, Action.VIEW_PHONE)
    audit_record(
        actor=actor,
        action="customers.exported",
        details={
            "expression": expression,
            "segment_id": segment_id,
            "segment": segment_name,
            "format": file_format,
            "rows": rows,
            "phones_masked": mask,
        },
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return Export(customers, rows, file_format, f"customers-{stamp}.{file_format}", mask)


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"


def safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formula injection: text starting like a formula gets a leading
    apostrophe, which Excel and WPS show as text."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_header() -> list[str]:
    fields = [f.name for f in CustomField.objects.all()]
    return [
        "id",
        _("姓名"),
        _("手机号"),
        "unionid",
        _("生命周期"),
        _("标签"),
        _("跟进员工"),
        _("添加时间"),
        *fields,
    ]


def export_rows(export: Export) -> Iterator[list[Any]]:
    """The export's rows in id order, formula-safe, phones masked as required."""
    field_keys = [f.key for f in CustomField.objects.all()]
    stage_names = {stage.key: stage.name for stage in stages()}
    identities = Prefetch(
        "identities",
        queryset=CustomerIdentity.objects.filter(
            kind__in=[IdentityKind.PHONE, IdentityKind.UNIONID]
        ).order_by("pk"),
    )
    tags = Prefetch("tags", queryset=CustomerTag.objects.select_related("tag").order_by("pk"))
    relations = Prefetch(
        "relations",
        queryset=StaffRelation.objects.select_related("staff").order_by("added_at", "pk"),
    )
    last = 0
    while True:
        chunk = list(
            export.customers.filter(pk__gt=last)
            .order_by("pk")
            .prefetch_related(identities, tags, relations)[:CHUNK]
        )
        if not chunk:
            return
        for customer in chunk:
            yield [safe_cell(value) for value in _row(customer, export, field_keys, stage_names)]
        last = chunk[-1].pk


def _row(
    customer: Customer, export: Export, field_keys: list[str], stage_names: dict[str, str]
) -> list[Any]:
    phones = [i.value for i in customer.identities.all() if i.kind == IdentityKind.PHONE]
    unionids = [i.value for i in customer.identities.all() if i.kind == IdentityKind.UNIONID]
    if export.mask_phones:
        phones = [mask_phone(phone) for phone in phones]
    tag_names = sorted({t.tag.name for t in customer.tags.all()})
    following = [
        r
        for r in customer.relations.all()
        if r.status in {RelationStatus.ACTIVE, RelationStatus.HALF}
    ]
    staff_names = list(dict.fromkeys(r.staff.name for r in following))
    added = [r.added_at for r in customer.relations.all() if r.added_at is not None]
    return [
        customer.pk,
        customer.name,
        "、".join(phones),
        "、".join(unionids),
        stage_names.get(customer.stage, customer.stage),
        "、".join(tag_names),
        "、".join(staff_names),
        timezone.localtime(min(added)).strftime("%Y-%m-%d %H:%M") if added else "",
        *[_field_text(customer.attributes.get(key)) for key in field_keys],
    ]


def _field_text(value: Any) -> Any:
    return "" if value is None else value


class _Echo:
    """A file-like whose write returns what was written, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def export_csv_stream(export: Export) -> Iterator[bytes]:
    """UTF-8 with a BOM, so Excel opens Chinese text correctly by double-click."""
    writer = csv.writer(_Echo())
    yield "\ufeff".encode()
    yield writer.writerow(export_header()).encode()
    for row in export_rows(export):
        yield writer.writerow(row).encode()


def export_xlsx_file(export: Export) -> IO[bytes]:
    """The workbook in a temporary file, written row by row (openpyxl write-only mode)."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(_("客户"))
    sheet.append(export_header())
    for row in export_rows(export):
        sheet.append(row)
    file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (returned)
    workbook.save(file)
    file.seek(0)
    return file


def xlsx_bytes(title: str, rows: list[list[Any]]) -> bytes:
    """A small workbook of one sheet (reports, chart numbers)."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])  # Excel's limit on sheet names
    for row in rows:
        sheet.append([safe_cell(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows: list[list[Any]]) -> bytes:
    """A small CSV document (error reports), UTF-8 with a BOM for Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode()
