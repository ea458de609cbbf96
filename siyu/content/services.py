"""Writes of the content library and its radar: items, folders, tracked links and visits.

Every send is a ``TrackingLink``; ``tracked_url`` is what other apps (mass sends, SOPs, welcome
messages, the workspace) call to put a piece of content into a message. The customer's H5 page
records a ``Visit`` per open (``visit_open``), its reading time from beacons
(``visit_beacon``) and, through the share token each page carries, who forwarded it to whom.
"""

import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.urls import reverse
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.content import events
from siyu.content.models import (
    ContentItem,
    ContentKind,
    ContentTag,
    Folder,
    TrackingLink,
    UrlStatus,
    Visit,
)
from siyu.content.richtext import sanitize_html
from siyu.content.signing import LinkExpired, LinkToken, token_decode, token_encode
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.http import http_client
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import Customer

logger = logging.getLogger(__name__)

# A reading session longer than this is a phone left open, not reading.
MAX_READ_SECONDS = 3600
# Beacons may run a little ahead of the server's clock (network, clock skew).
BEACON_SLACK_SECONDS = 10
# A reload by the same visitor within this window is the same open, not another.
REOPEN_WINDOW = timedelta(minutes=10)
# A visit silent this long without its final beacon (the phone was locked) is reported as read.
READ_REPORT_AFTER = timedelta(minutes=5)
MAX_FILE_BYTES = 50 * 1024 * 1024
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".webm"}
MAX_TAGS = 20
MAX_FOLDER_DEPTH = 5
URL_CHECK_TIMEOUT_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------
# Tracked links


def tracked_link_create(
    *,
    item: ContentItem,
    sender: StaffMember,
    source: str,
    customer: Customer | None = None,
    expires_at: datetime | None = None,
) -> TrackingLink:
    # Re-read: callers hold instances loaded before an archive or an edit.
    fresh = ContentItem.objects.filter(pk=item.pk).first()
    if fresh is None or fresh.archived_at is not None:
        raise InvalidInput("this content is archived and can no longer be sent")
    item = fresh
    missing = item_missing(item)
    if missing:
        raise InvalidInput(f"this content is incomplete: a {item.kind} item needs {missing}")
    if sender.status != StaffStatus.ACTIVE:
        raise InvalidInput("only active members can send content")
    source = source.strip()
    if not source or len(source) > 64:
        raise InvalidInput("source must be 1 to 64 characters")
    now = timezone.now()
    if expires_at is None:
        expires_at = now + timedelta(days=settings.SIYU_CONTENT_LINK_DAYS)
    # Whole seconds: the token carries the expiry as a Unix timestamp.
    expires_at = expires_at.replace(microsecond=0)
    return TrackingLink.objects.create(
        item=item, sender=sender, source=source, customer=customer, expires_at=expires_at
    )


def link_url(*, link: TrackingLink, from_visit: Visit | None = None) -> str:
    """Absolute URL of the customer page for ``link`` (as shared by ``from_visit`` if given)."""
    tenant = get_current_tenant()
    token = token_encode(
        tenant,
        LinkToken(
            link_id=link.pk,
            expires_at=link.expires_at,
            from_visit_id=from_visit.pk if from_visit is not None else None,
        ),
    )
    return settings.SITE_URL + reverse("content_h5:view", args=[tenant.slug, token])


def tracked_url(
    *, item: ContentItem, sender: StaffMember, source: str, customer: Customer | None = None
) -> str:
    """The signed tracking URL to put in a message from ``sender`` (source e.g. "masssend:12").
    Raises ``InvalidInput`` for archived or incomplete items, inactive senders or a bad
    source."""
    link = tracked_link_create(item=item, sender=sender, source=source, customer=customer)
    return link_url(link=link)


def tracked_link_for_self(
    *, actor: StaffMember, item_id: int, customer: Customer | None = None, source: str = "console"
) -> TrackingLink:
    """A member takes a link from their smart briefcase (the library) to send themselves."""
    require(actor, Action.CONTENT_SHARE)
    item = ContentItem.objects.filter(pk=item_id).first()
    if item is None:
        raise NotFound("content not found")
    return tracked_link_create(item=item, sender=actor, source=source, customer=customer)


# ---------------------------------------------------------------------------------------------
# Visits (the customer H5 page)


@dataclass(frozen=True)
class Opened:
    visit: Visit
    share_url: str


def item_for_token(*, token: str) -> ContentItem:
    """The item behind a valid, unexpired token (for its file and cover); records nothing."""
    return _link_for_token(token)[0].item


def _link_for_token(token: str) -> tuple[TrackingLink, Visit | None]:
    now = timezone.now()
    parsed = token_decode(get_current_tenant(), token, now=now)
    link = TrackingLink.objects.select_related("item").filter(pk=parsed.link_id).first()
    if link is None:
        raise InvalidInput("this link is not valid", code="link_invalid")
    if link.expires_at <= now:
        raise LinkExpired("this link has expired")
    parent = None
    if parsed.from_visit_id is not None:
        parent = Visit.objects.filter(pk=parsed.from_visit_id, link=link).first()
        if parent is None:
            raise InvalidInput("this link is not valid", code="link_invalid")
    return link, parent


def visit_open(
    *, token: str, customer: Customer | None, browser_key: str, user_agent: str
) -> Opened:
    """Record an open of the page behind ``token`` by this visitor (the tenant in context).

    ``customer`` is the visitor as identified by WeChat OAuth (None when the company has no
    official account); ``browser_key`` is a random id kept in their session. Raises
    ``InvalidInput`` (code link_invalid) for tokens we did not sign and ``LinkExpired`` for
    expired ones; nothing is recorded then.
    """
    link, parent = _link_for_token(token)
    now = timezone.now()
    visitor_key = f"c:{customer.pk}" if customer is not None else f"s:{browser_key}"
    if parent is not None and parent.visitor_key == visitor_key:
        # Opening your own share (the page's address is the share token): not a forward.
        parent = parent.forwarded_from
    with transaction.atomic():
        recent = (
            Visit.objects.filter(
                link=link,
                visitor_key=visitor_key,
                forwarded_from=parent,
                opened_at__gte=now - REOPEN_WINDOW,
            )
            .order_by("-opened_at")
            .first()
        )
        visit = recent or _visit_create(
            link=link,
            parent=parent,
            customer=customer,
            visitor_key=visitor_key,
            user_agent=user_agent,
            now=now,
        )
    return Opened(visit=visit, share_url=link_url(link=link, from_visit=visit))


def _visit_create(
    *,
    link: TrackingLink,
    parent: Visit | None,
    customer: Customer | None,
    visitor_key: str,
    user_agent: str,
    now: datetime,
) -> Visit:
    item = link.item
    visit = Visit.objects.create(
        link=link,
        item=item,
        sender_id=link.sender_id,
        customer=customer,
        visitor_key=visitor_key,
        forwarded_from=parent,
        depth=parent.depth + 1 if parent is not None else 0,
        beacon_key=secrets.token_urlsafe(16),
        opened_at=now,
        user_agent=user_agent[:300],
    )
    customer_id = customer.pk if customer is not None else None
    event_record(
        type=events.CONTENT_OPENED,
        source="h5",
        customer_id=customer_id,
        payload={
            "item_id": item.pk,
            "title": item.title,
            "staff_id": link.sender_id,
            "source": link.source,
            "link_id": link.pk,
            "visit_id": visit.pk,
        },
        idempotency_key=f"content.opened:{visit.pk}",
    )
    if parent is not None:
        event_record(
            type=events.CONTENT_FORWARDED,
            source="h5",
            customer_id=customer_id,
            payload={
                "item_id": item.pk,
                "staff_id": link.sender_id,
                "from_customer_id": parent.customer_id,
                "visit_id": visit.pk,
                "from_visit_id": parent.pk,
            },
            idempotency_key=f"content.forwarded:{visit.pk}",
        )
    return visit


def visit_beacon(*, beacon_key: str, seconds: Any, final: bool = False) -> Visit:
    """The page reports how long it has been read (cumulative seconds). Values only grow and
    are capped by the wall-clock time since the open, so a forged beacon cannot inflate them.
    ``final`` (page hidden or closed) writes the content.read event, once per visit."""
    if not 8 <= len(beacon_key) <= 32:
        raise InvalidInput("unknown visit", code="visit_invalid")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput("seconds must be a whole number")
    if not 0 <= seconds <= 86_400:
        raise InvalidInput("seconds must be between 0 and 86400")
    visit = Visit.objects.filter(beacon_key=beacon_key).first()
    if visit is None:
        raise InvalidInput("unknown visit", code="visit_invalid")
    now = timezone.now()
    elapsed = int((now - visit.opened_at).total_seconds()) + BEACON_SLACK_SECONDS
    capped = min(seconds, elapsed, MAX_READ_SECONDS)
    with transaction.atomic():
        # Greatest: beacons race (interval vs. unload) and may arrive out of order.
        Visit.objects.filter(pk=visit.pk).update(
            read_seconds=Greatest(F("read_seconds"), capped), last_beacon_at=now
        )
        visit.refresh_from_db()
        # A page closed before a second of reading is an open, not a read.
        if final and visit.read_seconds > 0:
            _read_report(visit=visit, now=now)
    return visit


def _read_report(*, visit: Visit, now: datetime) -> bool:
    """Write content.read for ``visit`` unless already written (claimed by conditional update)."""
    claimed = Visit.objects.filter(pk=visit.pk, read_reported_at__isnull=True).update(
        read_reported_at=now
    )
    if claimed != 1:
        return False
    visit.refresh_from_db()
    item = ContentItem.objects.get(pk=visit.item_id)
    event_record(
        type=events.CONTENT_READ,
        source="h5",
        customer_id=visit.customer_id,
        payload={
            "item_id": item.pk,
            "title": item.title,
            "staff_id": visit.sender_id,
            "seconds": visit.read_seconds,
            "visit_id": visit.pk,
        },
        idempotency_key=f"content.read:{visit.pk}",
    )
    return True


def visit_reads_sweep(*, now: datetime | None = None, batch: int = 500) -> int:
    """Report reads whose final beacon never came (WeChat killed, phone locked): those read at
    least a second and silent for ``READ_REPORT_AFTER``. Tenant in context."""
    now = now or timezone.now()
    ids = list(
        Visit.objects.filter(
            read_reported_at__isnull=True,
            read_seconds__gt=0,
            last_beacon_at__lte=now - READ_REPORT_AFTER,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:batch]
    )
    reported = 0
    for visit_id in ids:
        with transaction.atomic():
            visit = Visit.objects.get(pk=visit_id)
            reported += _read_report(visit=visit, now=now)
    return reported


# ---------------------------------------------------------------------------------------------
# Folders


def folder_create(*, actor: StaffMember, name: str, parent_id: int | None = None) -> Folder:
    require(actor, Action.CONTENT_MANAGE)
    name = _clean_name(name, limit=64)
    parent = _folder(parent_id) if parent_id is not None else None
    if parent is not None and _folder_depth(parent) >= MAX_FOLDER_DEPTH:
        raise InvalidInput(f"folders nest at most {MAX_FOLDER_DEPTH} levels")
    try:
        with transaction.atomic():
            return Folder.objects.create(name=name, parent=parent)
    except IntegrityError:
        raise InvalidInput("a folder with this name exists here") from None


def folder_rename(*, actor: StaffMember, folder_id: int, name: str) -> Folder:
    require(actor, Action.CONTENT_MANAGE)
    folder = _folder(folder_id)
    folder.name = _clean_name(name, limit=64)
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
    except IntegrityError:
        raise InvalidInput("a folder with this name exists here") from None
    return folder


def folder_delete(*, actor: StaffMember, folder_id: int) -> None:
    """Delete an empty folder (items and subfolders must be moved or archived first)."""
    require(actor, Action.CONTENT_MANAGE)
    folder = _folder(folder_id)
    if folder.children.exists() or folder.items.filter(archived_at__isnull=True).exists():
        raise InvalidInput("only empty folders can be deleted")
    folder.delete()


def _folder(folder_id: int) -> Folder:
    folder = Folder.objects.filter(pk=folder_id).first()
    if folder is None:
        raise NotFound("folder not found")
    return folder


def _folder_depth(folder: Folder) -> int:
    depth = 1
    while folder.parent_id is not None:
        folder = Folder.objects.get(pk=folder.parent_id)
        depth += 1
    return depth


def _clean_name(name: str, *, limit: int) -> str:
    name = (name or "").strip()
    if not name or len(name) > limit:
        raise InvalidInput(f"name must be 1 to {limit} characters")
    return name


# ---------------------------------------------------------------------------------------------
# Items

ITEM_FIELDS = {"kind", "title", "summary", "folder_id", "tags", "body", "url", "price_fen"}
ITEM_FIELDS |= {"card_staff_id", "cover", "file"}
NULLABLE_ITEM_FIELDS = {"folder_id", "price_fen", "card_staff_id"}


def item_create(*, actor: StaffMember, **fields: Any) -> ContentItem:
    """Create an item. Fields: kind, title, summary, folder_id, tags (names), body (HTML,
    cleaned), url, price_fen, card_staff_id, cover / file (uploads). What a kind needs:
    article → body; poster → image file; file → file; video → file or url; link → url;
    product → price_fen; name_card → card_staff_id."""
    require(actor, Action.CONTENT_MANAGE)
    item = ContentItem(created_by=actor)
    return _item_save(item=item, fields=fields, creating=True)


def item_update(*, actor: StaffMember, item_id: int, **fields: Any) -> ContentItem:
    require(actor, Action.CONTENT_MANAGE)
    return _item_save(item=_item(item_id), fields=fields, creating=False)


def item_files_set(
    *,
    actor: StaffMember,
    item_id: int,
    file: UploadedFile | None = None,
    cover: UploadedFile | None = None,
) -> ContentItem:
    require(actor, Action.CONTENT_MANAGE)
    uploads = {name: f for name, f in (("file", file), ("cover", cover)) if f is not None}
    if not uploads:
        raise InvalidInput("upload a file or a cover (multipart fields file, cover)")
    return _item_save(item=_item(item_id), fields=uploads, creating=False)


def item_archive(*, actor: StaffMember, item_id: int) -> ContentItem:
    """Archive rather than delete: links already sent keep opening and the radar keeps history."""
    require(actor, Action.CONTENT_MANAGE)
    item = _item(item_id)
    if item.archived_at is None:
        item.archived_at = timezone.now()
        item.save(update_fields=["archived_at", "updated_at"])
    return item


def _item(item_id: int) -> ContentItem:
    item = ContentItem.objects.filter(pk=item_id).first()
    if item is None:
        raise NotFound("content not found")
    return item


def _item_save(*, item: ContentItem, fields: dict[str, Any], creating: bool) -> ContentItem:
    unknown = set(fields) - ITEM_FIELDS
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    # None means "not given", except where it clears a nullable field (PATCH folder_id: null).
    fields = {k: v for k, v in fields.items() if v is not None or k in NULLABLE_ITEM_FIELDS}
    if not creating and "kind" in fields and fields["kind"] != item.kind:
        raise InvalidInput("the kind of an item cannot change")
    if "kind" in fields:
        if fields["kind"] not in ContentKind.values:
            raise InvalidInput(f"kind must be one of {', '.join(ContentKind.values)}")
        item.kind = fields["kind"]
    elif creating:
        raise InvalidInput("kind is required")
    if "title" in fields or creating:
        item.title = _clean_name(fields.get("title", ""), limit=100)
    if "summary" in fields:
        summary = str(fields["summary"]).strip()
        if len(summary) > 300:
            raise InvalidInput("summary may be at most 300 characters")
        item.summary = summary
    if "folder_id" in fields:
        item.folder = _folder(fields["folder_id"]) if fields["folder_id"] is not None else None
    if "body" in fields:
        item.body = sanitize_html(str(fields["body"]))
    old_url = item.url
    if "url" in fields:
        item.url = _clean_url(str(fields["url"]))
    if "price_fen" in fields:
        price = fields["price_fen"]
        if price is not None and (isinstance(price, bool) or not isinstance(price, int)):
            raise InvalidInput("price_fen must be a whole number of fen")
        if price is not None and not 0 <= price <= 100_000_000_00:
            raise InvalidInput("price_fen is out of range")
        item.price_fen = price
    if "card_staff_id" in fields:
        item.card_staff = _card_staff(fields["card_staff_id"])
    if "cover" in fields:
        item.cover = _clean_image(fields["cover"], what="cover")
    if "file" in fields:
        upload: UploadedFile = fields["file"]
        if item.kind == ContentKind.POSTER:
            item.file = _clean_image(upload, what="poster")
        elif item.kind == ContentKind.VIDEO:
            item.file = _clean_video(upload)
        else:
            item.file = _clean_file(upload)
    _require_complete(item)
    if item.url != old_url or not item.url:
        item.url_status = UrlStatus.UNCHECKED
        item.url_checked_at = None
        item.url_error = ""
    with transaction.atomic():
        item.save()
        if "tags" in fields:
            item.tags.set(_tags(fields["tags"]))
        if item.url and item.url_status == UrlStatus.UNCHECKED:
            transaction.on_commit(lambda: _enqueue_url_check(item.pk))
    return item


# Uploads arrive separately over the API (create, then upload), so their absence is allowed
# on save and only refused when the item is sent.
UPLOADED_KINDS = {ContentKind.POSTER, ContentKind.FILE, ContentKind.VIDEO}


def item_missing(item: ContentItem) -> str:
    """What the item still needs before it can be sent ("" when complete)."""
    kind = ContentKind(item.kind)
    needs = {
        ContentKind.ARTICLE: ("a body", not item.body),
        ContentKind.POSTER: ("an image file", not item.file),
        ContentKind.FILE: ("a file", not item.file),
        ContentKind.VIDEO: ("a video file or url", not (item.file or item.url)),
        ContentKind.LINK: ("a url", not item.url),
        ContentKind.PRODUCT: ("price_fen", item.price_fen is None),
        ContentKind.NAME_CARD: ("card_staff_id", item.card_staff_id is None),
    }
    what, missing = needs[kind]
    return what if missing else ""


def _require_complete(item: ContentItem) -> None:
    missing = item_missing(item)
    if missing and item.kind not in UPLOADED_KINDS:
        raise InvalidInput(f"a {item.kind} item needs {missing}")


def _clean_url(url: str) -> str:
    url = url.strip()
    if not url:
        return ""
    if len(url) > 500:
        raise InvalidInput("url may be at most 500 characters")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise InvalidInput("url must be an absolute http(s) URL") from None
    return url


def _card_staff(staff_id: int | None) -> StaffMember | None:
    if staff_id is None:
        return None
    member = StaffMember.objects.filter(pk=staff_id).first()
    if member is None:
        raise InvalidInput("no such member for the name card")
    return member


def _clean_file(upload: UploadedFile) -> UploadedFile:
    if upload.size is None or upload.size == 0:
        raise InvalidInput("the file is empty")
    if upload.size > MAX_FILE_BYTES:
        raise InvalidInput(f"files may be at most {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return upload


def _clean_video(upload: UploadedFile) -> UploadedFile:
    # Played inline on the customer's page, so only real video types (served as video/*).
    if os.path.splitext(upload.name or "")[1].lower() not in VIDEO_EXTENSIONS:
        raise InvalidInput(f"videos must be one of {', '.join(sorted(VIDEO_EXTENSIONS))}")
    return _clean_file(upload)


def _clean_image(upload: UploadedFile, *, what: str) -> UploadedFile:
    _clean_file(upload)
    try:
        with Image.open(upload) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise InvalidInput(f"the {what} must be a PNG, JPEG, GIF or WebP image") from None
    upload.seek(0)
    return upload


def _tags(names: Any) -> list[ContentTag]:
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidInput("tags must be a list of names")
    cleaned = sorted({_clean_name(name, limit=32) for name in names})
    if len(cleaned) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per item")
    for name in cleaned:
        ContentTag.objects.get_or_create(name=name)
    return list(ContentTag.objects.filter(name__in=cleaned))


# ---------------------------------------------------------------------------------------------
# Dead-link check


def _enqueue_url_check(item_id: int) -> None:
    from siyu.content.tasks import check_url

    try:
        check_url.delay(get_current_tenant().pk, item_id)
    except Exception:
        # The broker is down: the periodic sweep re-enqueues unchecked items.
        logger.exception("could not enqueue the link check of content item %s", item_id)


def _private_host(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def item_url_check(*, item_id: int, client: httpx.Client | None = None) -> ContentItem:
    """Probe the item's outbound URL once (HEAD, then GET if HEAD is refused) and record ok or
    dead with the reason. Always finishes within the timeout: a hanging site is dead."""
    item = _item(item_id)
    if not item.url:
        return item
    host = urlsplit(item.url).hostname or ""
    # Same outbound policy as webhooks: the server does not probe its own network.
    if _private_host(host) and not settings.SIYU_WEBHOOK_ALLOW_PRIVATE:
        return _url_result(item, ok=False, error="private or loopback address")
    owned = client is None
    http = client or http_client(timeout=URL_CHECK_TIMEOUT_SECONDS)
    try:
        response = http.head(item.url)
        if response.status_code in (403, 405, 501):
            response = http.get(item.url)
        status = response.status_code
    except httpx.HTTPError as exc:
        return _url_result(item, ok=False, error=f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if owned:
            http.close()
    # Redirects count as alive: the target answered; following them is the browser's job.
    if status < 400:
        return _url_result(item, ok=True, error="")
    return _url_result(item, ok=False, error=f"HTTP {status}")


def _url_result(item: ContentItem, *, ok: bool, error: str) -> ContentItem:
    ContentItem.objects.filter(pk=item.pk, url=item.url).update(
        url_status=UrlStatus.OK if ok else UrlStatus.DEAD,
        url_checked_at=timezone.now(),
        url_error=error,
    )
    item.refresh_from_db()
    return item


def item_url_recheck(*, actor: StaffMember, item_id: int) -> ContentItem:
    """Ask for a new check (the console's 重新检查); the result arrives from the job."""
    require(actor, Action.CONTENT_MANAGE)
    item = _item(item_id)
    if not item.url:
        raise InvalidInput("this item has no outbound url to check")
    ContentItem.objects.filter(pk=item.pk).update(
        url_status=UrlStatus.UNCHECKED, url_checked_at=None, url_error=""
    )
    transaction.on_commit(lambda: _enqueue_url_check(item.pk))
    item.refresh_from_db()
    return item
