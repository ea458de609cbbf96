"""Reading uploaded spreadsheets: CSV (UTF-8 with or without BOM, GBK/GB18030 as Chinese Excel
writes it, UTF-16 "Unicode text") and xlsx, streamed row by row so a large file never sits in
memory. No database access here: columns are mapped against a ``Vocabulary`` the caller loads.
"""

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any

from django.utils.translation import gettext as _

from siyu.core.errors import InvalidInput

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
SNIFF_BYTES = 64 * 1024
TAG_SEPARATORS = re.compile(r"[,，、;；|｜\n]+")
TAG_GROUP_SEPARATORS = (":", "：")
PHONE = re.compile(r"^1[3-9]\d{9}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-@.]{1,128}$")


class FileTooLarge(InvalidInput):
    code = "file_too_large"
    status = 413


@dataclass
class Table:
    file_format: str  # csv | xlsx
    encoding: str
    header: list[str]
    header_row: int
    # (spreadsheet row number, cells) for every non-blank data row.
    rows: Iterator[tuple[int, list[str]]]


def file_format_for(file_name: str) -> str:
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix in {"csv", "txt"}:
        return "csv"
    if suffix == "xlsx":
        return "xlsx"
    if suffix in {"xls", "et", "numbers"}:
        raise InvalidInput(_("不支持 .%(suffix)s 文件，请另存为 .xlsx 或 CSV") % {"suffix": suffix})
    raise InvalidInput(_("只支持 CSV 和 Excel（.xlsx）文件"))


@contextmanager
def open_table(file: IO[bytes], file_format: str) -> Iterator[Table]:
    """The file's header and a lazy iterator over its rows. Decoding or format problems raise
    ``InvalidInput`` (also while iterating), never a bare parser exception."""
    if file_format == "csv":
        table, text = _csv_table(file)
        try:
            yield table
        finally:
            text.detach()  # closing the wrapper would close the caller's file
        return
    try:
        import openpyxl

        workbook = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise InvalidInput(_("文件无法作为 Excel（.xlsx）读取，可能已损坏")) from exc
    except Exception as exc:  # openpyxl's InvalidFileException and friends
        raise InvalidInput(_("文件无法作为 Excel（.xlsx）读取，可能已损坏")) from exc
    try:
        if not workbook.worksheets:
            raise InvalidInput(_("工作簿里没有工作表"))
        sheet = workbook.worksheets[0]
        cells = (
            [_cell_text(value) for value in row]
            for row in _guard(sheet.iter_rows(values_only=True), "xlsx")
        )
        yield _table("xlsx", "", cells)
    finally:
        workbook.close()


def _guard(rows: Iterator[Any], what: str) -> Iterator[Any]:
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            _("文件编码无法识别（已按 %(encoding)s 读取），请另存为 UTF-8 CSV")
            % {"encoding": exc.encoding}
        ) from exc
    except csv.Error as exc:
        raise InvalidInput(_("CSV 格式错误：%(error)s") % {"error": exc}) from exc
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InvalidInput(_("文件无法作为 Excel（.xlsx）读取，可能已损坏")) from exc


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            # Incremental, so a character cut by the end of the sample is not an error.
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise InvalidInput(_("文件编码无法识别，请另存为 UTF-8 CSV"))


def _csv_table(file: IO[bytes]) -> tuple[Table, io.TextIOWrapper]:
    sample = file.read(SNIFF_BYTES)
    file.seek(0)
    if b"\x00" in sample and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidInput(_("这不是文本格式的 CSV 文件"))
    encoding = detect_encoding(sample)
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    first_line = sample.decode(encoding, errors="ignore").splitlines()[:1]
    delimiter = max([",", "\t", ";"], key=lambda d: first_line[0].count(d) if first_line else 0)
    reader = csv.reader(text, delimiter=delimiter)
    try:
        return _table("csv", encoding, _guard(reader, "csv")), text
    except InvalidInput:
        text.detach()
        raise


def _table(file_format: str, encoding: str, rows: Iterator[list[str]]) -> Table:
    numbered = ((number, row) for number, row in enumerate(rows, start=1) if any(row))
    first = next(numbered, None)
    if first is None:
        raise InvalidInput(_("文件是空的：第一行应为表头"))
    header_row, header = first
    return Table(file_format, encoding, [h.strip() for h in header], header_row, numbered)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        # Excel keeps phone numbers typed into a cell as numbers: 13800138000.0.
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


# --- columns ----------------------------------------------------------------------------

CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "昵称", "客户名称", "客户姓名", "客户昵称", "名称", "name", "nickname"),
    "phone": ("手机号", "手机", "手机号码", "电话", "联系电话", "phone", "mobile", "tel"),
    "unionid": ("unionid", "union_id", "微信unionid"),
    "external_userid": ("external_userid", "externaluserid", "外部联系人id", "客户id"),
    "tags": ("标签", "客户标签", "企业标签", "tags", "tag"),
    "stage": ("生命周期", "生命周期阶段", "客户阶段", "阶段", "stage", "lifecycle"),
}
TAG_COLUMNS: dict[str, tuple[str, ...]] = {
    "group": ("标签组", "标签分组", "分组", "group", "tag_group"),
    "tag": ("标签", "标签名", "标签名称", "tag", "name"),
    "order": ("排序", "顺序", "order"),
}
IDENTITY_TARGETS = ("phone", "unionid", "external_userid")


@dataclass(frozen=True)
class Vocabulary:
    """What the tenant has that cells may name: custom fields, stages and tags."""

    # key → (name, kind, choices)
    fields: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    # key or name → key
    stages: dict[str, str] = field(default_factory=dict)
    # tag name → names of the groups holding a tag of that name
    tags: dict[str, list[str]] = field(default_factory=dict)


def _normalise_header(text: str) -> str:
    text = re.sub(r"[（(【\[].*?[)）】\]]", "", text)  # "手机号(必填)" → "手机号"
    return re.sub(r"[\s*＊]", "", text).lower()


def target_label(target: str, vocabulary: Vocabulary) -> str:
    if target.startswith("field:"):
        key = target.removeprefix("field:")
        return vocabulary.fields.get(key, (key, "", []))[0]
    labels = {**CUSTOMER_COLUMNS, **TAG_COLUMNS}
    return labels[target][0]


def map_columns(
    kind: str, header: list[str], vocabulary: Vocabulary
) -> tuple[dict[int, str], list[str]]:
    """Column index → target for the recognised headers, and the headers that are ignored.
    Two columns meaning the same thing, or a missing required column, is an error."""
    known = CUSTOMER_COLUMNS if kind == "customers" else TAG_COLUMNS
    aliases = {
        _normalise_header(alias): target for target, names in known.items() for alias in names
    }
    if kind == "customers":
        for key, (name, _kind, _choices) in vocabulary.fields.items():
            aliases.setdefault(_normalise_header(key), f"field:{key}")
            aliases.setdefault(_normalise_header(name), f"field:{key}")
    columns: dict[int, str] = {}
    ignored: list[str] = []
    seen: dict[str, str] = {}
    for index, title in enumerate(header):
        target = aliases.get(_normalise_header(title))
        if target is None:
            if title:
                ignored.append(title)
            continue
        if target in seen:
            raise InvalidInput(
                _("列「%(a)s」和「%(b)s」表示同一项，请只保留一列")
                % {"a": seen[target], "b": title}
            )
        seen[target] = title
        columns[index] = target
    targets = set(columns.values())
    if kind == "customers" and not targets & set(IDENTITY_TARGETS):
        raise InvalidInput(
            _("缺少表头：至少需要「手机号」「unionid」「external_userid」中的一列，用来识别客户")
        )
    if kind == "tags":
        missing = [target_label(t, vocabulary) for t in ("group", "tag") if t not in targets]
        if missing:
            raise InvalidInput(_("缺少表头：%(columns)s") % {"columns": "、".join(missing)})
    return columns, ignored


# --- rows -------------------------------------------------------------------------------


@dataclass
class RowProblem(Exception):
    """A cell that cannot be imported; the row is skipped and reported."""

    column: str
    message: str


@dataclass
class CustomerRow:
    phone: str = ""
    unionid: str = ""
    external_userid: str = ""
    name: str = ""
    stage: str = ""  # a stage key
    tags: list[str] = field(default_factory=list)  # "name" or "group:name"
    fields: dict[str, Any] = field(default_factory=dict)

    def as_preview(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "unionid": self.unionid,
            "external_userid": self.external_userid,
            "name": self.name,
            "stage": self.stage,
            "tags": self.tags,
            "fields": self.fields,
        }


@dataclass
class TagRow:
    group: str
    tag: str
    order: int | None = None

    def as_preview(self) -> dict[str, Any]:
        return {"group": self.group, "tag": self.tag, "order": self.order}


def normalise_phone(raw: str) -> str:
    """Mainland mobile numbers as 11 digits: "+86 138-0013-8000" → "13800138000"."""
    digits = re.sub(r"[\s\-()（）.]", "", raw)
    if re.fullmatch(r"\d(\.\d+)?[eE]\+\d+", raw.strip()):
        raise RowProblem("phone", _("手机号被 Excel 转成了科学计数法，请把该列设为文本后重新导出"))
    digits = digits.removeprefix("+86").removeprefix("0086")
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if not PHONE.match(digits):
        raise RowProblem("phone", _("手机号「%(value)s」不是 11 位中国大陆手机号") % {"value": raw})
    return digits


def split_tags(raw: str) -> list[str]:
    names: list[str] = []
    for part in TAG_SEPARATORS.split(raw):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def tag_parts(name: str) -> tuple[str, str]:
    """("group", "tag") for "group:tag", ("", "tag") for a bare name."""
    for separator in TAG_GROUP_SEPARATORS:
        if separator in name:
            group, tag = name.split(separator, 1)
            return group.strip(), tag.strip()
    return "", name


def parse_customer_row(
    cells: list[str],
    columns: dict[int, str],
    vocabulary: Vocabulary,
    check_field: Callable[[str, str], Any],
) -> CustomerRow:
    """Validate one row without touching the database. ``check_field(key, value)`` returns the
    stored value of a custom field or raises ``InvalidInput`` (the customer core owns the rules
    of each field kind)."""
    values = {target: cells[i].strip() if i < len(cells) else "" for i, target in columns.items()}
    row = CustomerRow()
    if values.get("phone"):
        row.phone = normalise_phone(values["phone"])
    for target in ("unionid", "external_userid"):
        value = values.get(target, "")
        if value and not IDENTIFIER.match(value):
            raise RowProblem(target, _("「%(value)s」不是有效的 ID") % {"value": value[:40]})
        setattr(row, target, value)
    if not (row.phone or row.unionid or row.external_userid):
        raise RowProblem("phone", _("手机号、unionid、external_userid 至少填一项"))
    row.name = values.get("name", "")
    if len(row.name) > 128:
        raise RowProblem("name", _("姓名最多 128 个字符"))
    if values.get("stage"):
        key = vocabulary.stages.get(values["stage"]) or vocabulary.stages.get(
            values["stage"].lower()
        )
        if key is None:
            raise RowProblem(
                "stage", _("没有名为「%(value)s」的生命周期阶段") % {"value": values["stage"]}
            )
        row.stage = key
    row.tags = split_tags(values.get("tags", ""))
    for name in row.tags:
        group, tag = tag_parts(name)
        if not tag or len(tag) > 30 or len(group) > 30:
            raise RowProblem("tags", _("标签「%(name)s」为空或超过 30 个字符") % {"name": name})
    for target, value in values.items():
        if target.startswith("field:") and value:
            key = target.removeprefix("field:")
            try:
                row.fields[key] = check_field(key, value)
            except InvalidInput as exc:
                raise RowProblem(target, exc.message) from None
    return row


def parse_tag_row(cells: list[str], columns: dict[int, str]) -> TagRow:
    values = {target: cells[i].strip() if i < len(cells) else "" for i, target in columns.items()}
    group, tag = values.get("group", ""), values.get("tag", "")
    if not group:
        raise RowProblem("group", _("标签组不能为空"))
    if not tag:
        raise RowProblem("tag", _("标签不能为空"))
    if len(group) > 30 or len(tag) > 30:
        raise RowProblem("tag", _("标签组和标签最多 30 个字符"))
    order = None
    if values.get("order"):
        try:
            order = int(values["order"])
        except ValueError:
            raise RowProblem("order", _("排序必须是整数")) from None
    return TagRow(group=group, tag=tag, order=order)


def resolve_tag_names(names: list[str], existing: dict[str, list[str]]) -> list[tuple[str, str]]:
    """The (group, tag) pairs a row's tag names mean. ``existing`` maps each tag name to the
    groups holding it. An unknown tag, or a bare name held by several groups, fails the row."""
    found: list[tuple[str, str]] = []
    for name in names:
        group, tag = tag_parts(name)
        groups = existing.get(tag, [])
        if group and group in groups:
            found.append((group, tag))
        elif not group and len(groups) == 1:
            found.append((groups[0], tag))
        elif not group and len(groups) > 1:
            raise RowProblem(
                "tags",
                _("标签「%(tag)s」在多个标签组中都有（%(groups)s），请写成「标签组:标签」")
                % {"tag": tag, "groups": "、".join(sorted(groups))},
            )
        else:
            raise RowProblem(
                "tags", _("标签「%(name)s」不存在，请先在标签管理中创建") % {"name": name}
            )
    return found
