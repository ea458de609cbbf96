"""The welcome message: its stored shape, validation, and rendering into WeCom's request.

Stored as ``{"text": str, "attachments": [{"type": …, …}]}``. Text may carry variables such as
``{客户昵称}``; each attachment is validated against WeCom's limits for its type, so a message
that was accepted here is never refused by WeCom in the 20 seconds it has.
"""

import re
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

from siyu.core.errors import InvalidInput

TEXT_MAX_BYTES = 4000
ATTACHMENTS_MAX = 9
NICKNAME = "客户昵称"
STAFF_NAME = "员工姓名"
VARIABLES = (NICKNAME, STAFF_NAME)
_VARIABLE = re.compile(r"\{([^{}\s]{1,16})\}")

# type → {field: (required, max bytes, is a URL)}
_ATTACHMENT_FIELDS: dict[str, dict[str, tuple[bool, int, bool]]] = {
    "image": {"pic_url": (True, 500, True)},
    "link": {
        "title": (True, 128, False),
        "url": (True, 500, True),
        "picurl": (False, 500, True),
        "desc": (False, 512, False),
    },
    "miniprogram": {
        "title": (True, 64, False),
        "appid": (True, 64, False),
        "page": (True, 500, False),
        "pic_media_id": (True, 200, False),
    },
}


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _clean_attachment(index: int, raw: object) -> dict[str, str]:
    where = _("第 %(n)s 个附件") % {"n": index + 1}
    if not isinstance(raw, dict) or raw.get("type") not in _ATTACHMENT_FIELDS:
        raise InvalidInput(
            _("%(where)s的类型须为 image、link 或 miniprogram") % {"where": where},
            code="bad_attachment",
        )
    kind = str(raw["type"])
    fields = _ATTACHMENT_FIELDS[kind]
    unknown = set(raw) - set(fields) - {"type"}
    if unknown:
        raise InvalidInput(
            _("%(where)s含有未知字段：%(fields)s")
            % {"where": where, "fields": ", ".join(sorted(unknown))},
            code="bad_attachment",
        )
    clean = {"type": kind}
    for name, (required, max_bytes, is_url) in fields.items():
        value = raw.get(name, "")
        if not isinstance(value, str):
            raise InvalidInput(
                _("%(where)s的 %(field)s 须为文本") % {"where": where, "field": name},
                code="bad_attachment",
            )
        value = value.strip()
        if not value:
            if required:
                raise InvalidInput(
                    _("%(where)s缺少 %(field)s") % {"where": where, "field": name},
                    code="bad_attachment",
                )
            continue
        if len(value.encode()) > max_bytes:
            raise InvalidInput(
                _("%(where)s的 %(field)s 超过 %(max)s 字节")
                % {"where": where, "field": name, "max": max_bytes},
                code="bad_attachment",
            )
        if is_url and not _is_url(value):
            raise InvalidInput(
                _("%(where)s的 %(field)s 须为 http(s) 链接") % {"where": where, "field": name},
                code="bad_attachment",
            )
        clean[name] = value
    return clean


def welcome_clean(value: object) -> dict[str, Any]:
    """A valid stored welcome message; ``{}`` (nothing set) means "use the default"."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict) or set(value) - {"text", "attachments"}:
        raise InvalidInput(_("欢迎语须为 {text, attachments}"), code="bad_welcome")
    text = value.get("text", "")
    attachments = value.get("attachments", [])
    if not isinstance(text, str) or not isinstance(attachments, list):
        raise InvalidInput(_("欢迎语须为 {text, attachments}"), code="bad_welcome")
    text = text.strip()
    if len(text.encode()) > TEXT_MAX_BYTES:
        raise InvalidInput(
            _("欢迎语文字不能超过 %(max)s 字节") % {"max": TEXT_MAX_BYTES}, code="welcome_too_long"
        )
    unknown = sorted({m for m in _VARIABLE.findall(text) if m not in VARIABLES})
    if unknown:
        raise InvalidInput(
            _("欢迎语中的变量 %(names)s 不存在，可用：%(known)s")
            % {
                "names": "、".join(f"{{{n}}}" for n in unknown),
                "known": "、".join(f"{{{n}}}" for n in VARIABLES),
            },
            code="bad_welcome",
        )
    if len(attachments) > ATTACHMENTS_MAX:
        raise InvalidInput(
            _("附件最多 %(max)s 个") % {"max": ATTACHMENTS_MAX}, code="bad_attachment"
        )
    clean = [_clean_attachment(i, raw) for i, raw in enumerate(attachments)]
    if not text and not clean:
        return {}
    return {"text": text, "attachments": clean}


def _truncate(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore")


def welcome_render(
    welcome: dict[str, Any], *, nickname: str, staff_name: str
) -> tuple[str, list[dict[str, Any]]]:
    """The text (variables filled in) and WeCom's attachment objects for one customer."""
    values = {NICKNAME: nickname, STAFF_NAME: staff_name}
    text = _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), welcome.get("text", ""))
    attachments = []
    for item in welcome.get("attachments", []):
        kind = item["type"]
        attachments.append({"msgtype": kind, kind: {k: v for k, v in item.items() if k != "type"}})
    return _truncate(text, TEXT_MAX_BYTES), attachments


def welcome_wants_nickname(welcome: dict[str, Any]) -> bool:
    return f"{{{NICKNAME}}}" in welcome.get("text", "")
