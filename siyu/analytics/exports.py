"""The channel report as CSV or xlsx: one row per source per day, then one total row per
source. Audited before a byte leaves; names are formula-safe (channel names are typed by
operators)."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.analytics.selectors import Line, Report, source_report
from siyu.analytics.sources import NO_SOURCE, SourceKey, format_source, kinds
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.imports.exports import csv_bytes, safe_cell, xlsx_bytes

FORMATS = ("csv", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    file_name: str
    content_type: str


def report_export(
    *,
    actor: StaffMember,
    start: date,
    end: date,
    kind: str | None = None,
    sources: list[SourceKey] | None = None,
    file_format: str = "csv",
) -> ExportFile:
    if file_format not in FORMATS:
        raise InvalidInput(_("导出格式必须是 csv 或 xlsx"))
    report = source_report(actor=actor, start=start, end=end, kind=kind, sources=sources)
    rows = [header()] + [_row(line, report) for line in export_lines(report)]
    audit_record(
        actor=actor,
        action="analytics.exported",
        details={
            "start": str(start),
            "end": str(end),
            "kind": kind,
            "sources": [format_source(source) for source in sources or []],
            "format": file_format,
            "rows": len(rows) - 1,
            "cost_visible": report.cost_visible,
        },
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    name = f"channels-{start:%Y%m%d}-{end:%Y%m%d}-{stamp}.{file_format}"
    content = csv_bytes(rows) if file_format == "csv" else xlsx_bytes(_("渠道分析"), rows)
    return ExportFile(content, name, CONTENT_TYPES[file_format])


def export_lines(report: Report) -> list[Line]:
    """Each source's days that had anything, then its total."""
    lines: list[Line] = []
    for row in report.rows:
        lines += [line for line in report.daily[row.source] if _active(line)]
        lines.append(row)
    return lines


def _active(line: Line) -> bool:
    c = line.counts
    return bool(c.scans or c.adds or c.deletes or c.cohort or c.spend_fen)


def header() -> list[str]:
    return [
        _("日期"),
        _("来源类型"),
        _("来源"),
        _("名称"),
        _("扫码"),
        _("添加"),
        _("删除"),
        _("净增"),
        _("1日留存"),
        _("7日留存"),
        _("30日留存"),
        _("付费客户"),
        _("付费转化率"),
        "GMV（元）",
        _("花费（元）"),
        _("获客成本（元）"),
        "ROI",
    ]


def _row(line: Line, report: Report) -> list[Any]:
    labels = kinds()
    return [
        safe_cell(str(line.day) if line.day else _("合计")),
        safe_cell(labels.get(line.source[0], line.source[0])),
        line.key if line.source != NO_SOURCE else "",
        safe_cell(line.label),
        "" if line.scans is None else line.scans,
        line.counts.adds,
        line.counts.deletes,
        line.net_adds,
        _percent(line.retention_1),
        _percent(line.retention_7),
        _percent(line.retention_30),
        line.counts.converted,
        _percent(line.conversion_rate),
        _yuan(line.counts.gmv_fen) if report.gmv_available else "",
        _yuan(line.spend_fen),
        _yuan(line.cost_per_customer_fen),
        "" if line.roi is None else round(line.roi, 4),
    ]


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _yuan(fen: float | None) -> str:
    return "" if fen is None else f"{fen / 100:.2f}"
