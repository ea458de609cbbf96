"""A panel's numbers as CSV or xlsx: exactly the table its chart draws. Audited before a byte
leaves; text cells are formula-safe (names are typed by operators and customers)."""

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.analytics.exports import CONTENT_TYPES, FORMATS, ExportFile
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.dashboards.selectors import Filters, Panel, panel
from siyu.imports.exports import csv_bytes, safe_cell, xlsx_bytes


def panel_export(
    *, actor: StaffMember, key: str, filters: Filters, file_format: str = "csv", grain: str = ""
) -> ExportFile:
    if file_format not in FORMATS:
        raise InvalidInput(_("导出格式必须是 csv 或 xlsx"))
    found = panel(actor, key, filters, grain=grain)
    rows = [[c.label for c in found.columns]] + [_cells(found, row) for row in found.rows]
    audit_record(
        actor=actor,
        action="dashboards.exported",
        details={
            "panel": key,
            "start": str(filters.start),
            "end": str(filters.end),
            "department": filters.department_id,
            "format": file_format,
            "rows": len(rows) - 1,
        },
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    content = csv_bytes(rows) if file_format == "csv" else xlsx_bytes(found.title, rows)
    return ExportFile(content, f"dashboard-{key}-{stamp}.{file_format}", CONTENT_TYPES[file_format])


def _cells(found: Panel, row: list[Any]) -> list[Any]:
    # Only text is guarded against formula injection: a negative amount ("-12.34") stays a
    # number to the spreadsheet.
    return [
        column.shown(value) if column.unit else safe_cell(column.shown(value))
        for column, value in zip(found.columns, row, strict=True)
    ]
