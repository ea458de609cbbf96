"""Writes of the staff workspace: tasks, alerts (WeCom app messages) and the scripts library.

``task_create`` and ``alert_send`` are called by every lane that has something for a member to
do or know; both are idempotent on their ``dedupe_key`` so a re-run lane or a re-delivered
event never doubles them.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.events import get_event_type
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import WeComError
from siyu.workspace import events
from siyu.workspace.models import (
    AlertStatus,
    Script,
    ScriptCategory,
    StaffAlert,
    StaffTask,
    TaskStatus,
)

logger = logging.getLogger(__name__)

MAX_ATTACHMENTS = 9  # WeCom's cap on the attachments of one message
ATTACHMENT_KINDS = {"image", "link", "file", "miniprogram"}


# --- app messages ----------------------------------------------------------------------------


def app_text_send(*, staff: StaffMember, text: str) -> None:
    """Send ``text`` to one member as a WeCom app message (自建应用消息); raises ``WeComError``.
    The one path every lane's member notification goes through."""
    tenant = get_current_tenant()
    with WeComClient.for_tenant(tenant, app="agent") as wecom:
        wecom.send_app_message(
            {
                "touser": staff.userid,
                "msgtype": "text",
                "agentid": tenant.agent_id,
                "text": {"content": text},
            }
        )


# --- tasks -----------------------------------------------------------------------------------


def _current_owner(customer_id: int, *, exclude: StaffMember) -> StaffMember | None:
    """The active member the customer now belongs to (their latest active relation)."""
    relation = (
        StaffRelation.objects.select_related("staff")
        .filter(
            customer_id=customer_id,
            status=RelationStatus.ACTIVE,
            staff__status=StaffStatus.ACTIVE,
        )
        .exclude(staff=exclude)
        .order_by("-added_at", "-pk")
        .first()
    )
    return relation.staff if relation is not None else None


def task_create(
    *,
    staff: StaffMember,
    title: str,
    kind: str,
    customer: Customer | None = None,
    body: str = "",
    source: str = "",
    dedupe_key: str | None = None,
    due_at: datetime | None = None,
) -> StaffTask:
    """Give ``staff`` a to-do; with a ``dedupe_key`` a second call returns the first task.

    A member who has left never receives a task: it goes to the customer's current owner
    (``rerouted_from`` says whose it was), or is recorded as cancelled when there is none.
    """
    title = title.strip()
    if not title or not kind or len(kind) > 32:
        raise InvalidInput(_("任务需要标题和类型"))
    if due_at is not None and timezone.is_naive(due_at):
        raise InvalidInput(_("截止时间需要带时区"))
    if dedupe_key is not None:
        dedupe_key = dedupe_key[:200]
        existing = StaffTask.objects.filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing
    values: dict[str, Any] = {
        "staff": staff,
        "kind": kind,
        "title": title[:200],
        "body": body,
        "customer": customer,
        "source": source[:100],
        "dedupe_key": dedupe_key,
        "due_at": due_at,
    }
    if staff.status != StaffStatus.ACTIVE:
        owner = _current_owner(customer.pk, exclude=staff) if customer is not None else None
        if owner is not None:
            values.update(staff=owner, rerouted_from=staff)
        else:
            values.update(status=TaskStatus.CANCELLED, cancel_reason=_("员工已离职，无接替成员"))
    try:
        with transaction.atomic():
            return StaffTask.objects.create(**values)
    except IntegrityError:
        if dedupe_key is None:
            raise
        return StaffTask.objects.get(dedupe_key=dedupe_key)


def _own_task(actor: StaffMember, task_id: int) -> StaffTask:
    require(actor, Action.WORKSPACE_USE)
    task = StaffTask.objects.filter(pk=task_id, staff=actor).first()
    if task is None:
        raise NotFound(_("任务不存在"))
    return task


def task_done(*, actor: StaffMember, task_id: int, source: str = "console") -> StaffTask:
    """The member marks their own task done (once; a second tap is a no-op)."""
    task = _own_task(actor, task_id)
    if task.status == TaskStatus.DONE:
        return task
    if task.status == TaskStatus.CANCELLED:
        raise Conflict(_("任务已取消"))
    with transaction.atomic():
        now = timezone.now()
        claimed = StaffTask.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(
            status=TaskStatus.DONE, done_at=now
        )
        if claimed:
            event_record(
                type=events.TASK_DONE,
                source=source,
                customer_id=task.customer_id,
                payload={"task_id": task.pk, "kind": task.kind, "staff_id": actor.pk},
                idempotency_key=f"task:{task.pk}:done",
            )
    task.refresh_from_db()
    return task


def customer_transferred(
    *, customer: Customer, from_staff: StaffMember, to_staff: StaffMember, item_id: int
) -> int:
    """The customer now belongs to ``to_staff``: open tasks about them follow (``rerouted_from``
    says whose they were), and the new owner gets a task to introduce themselves. Returns how
    many tasks moved."""
    moved = StaffTask.objects.filter(
        customer=customer, staff=from_staff, status=TaskStatus.OPEN
    ).update(staff=to_staff, rerouted_from=from_staff)
    task_create(
        staff=to_staff,
        kind="transfer",
        title=_("新接手客户 %(who)s：打个招呼") % {"who": customer},
        body=_("您好，我是%(me)s，之后由我为您服务，有任何需要随时找我～") % {"me": to_staff.name},
        customer=customer,
        source=f"transfer:{item_id}",
        dedupe_key=f"transfer:{item_id}",
    )
    return moved


def tasks_of_departed_settle(
    *, staff: StaffMember, waiting_customer_ids: set[int]
) -> dict[str, int]:
    """Open tasks of a member who left: those about a customer who already has a new owner
    move to them; those whose customer is still being transferred (``waiting_customer_ids``)
    wait for ``customer.transferred``; every other one is cancelled with the reason."""
    moved = cancelled = 0
    for task in StaffTask.objects.filter(staff=staff, status=TaskStatus.OPEN):
        owner = (
            _current_owner(task.customer_id, exclude=staff)
            if task.customer_id is not None
            else None
        )
        if owner is not None:
            moved += StaffTask.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(
                staff=owner, rerouted_from=staff
            )
        elif task.customer_id not in waiting_customer_ids:
            cancelled += StaffTask.objects.filter(pk=task.pk, status=TaskStatus.OPEN).update(
                status=TaskStatus.CANCELLED, cancel_reason=_("员工已离职，无接替成员")
            )
    return {"moved": moved, "cancelled": cancelled}


# --- alerts ----------------------------------------------------------------------------------


def _rate_limited(staff: StaffMember, customer: Customer | None, kind: str, now: datetime) -> bool:
    """A busy customer never floods a member: one alert of a kind per customer per interval
    (a read does not hide the payment that follows it), and a cap per member and hour."""
    mine = StaffAlert.objects.filter(staff=staff)
    if customer is not None:
        window = timedelta(seconds=settings.SIYU_ALERT_CUSTOMER_INTERVAL_SECONDS)
        recent = mine.filter(customer=customer, kind=kind, created_at__gt=now - window)
        if recent.exists():
            return True
    hourly = mine.filter(created_at__gt=now - timedelta(hours=1)).count()
    return hourly >= settings.SIYU_ALERT_STAFF_PER_HOUR


def alert_send(
    *,
    staff: StaffMember,
    kind: str,
    text: str,
    dedupe_key: str,
    customer: Customer | None = None,
) -> StaffAlert | None:
    """Record an alert for ``staff`` and send it as a WeCom app message after commit.

    Suppressed (``None``): a duplicate ``dedupe_key``, a member who is not active, another
    alert of the kind about the customer within ``SIYU_ALERT_CUSTOMER_INTERVAL_SECONDS``, or the
    member's ``SIYU_ALERT_STAFF_PER_HOUR`` cap reached.
    """
    if not text.strip() or not dedupe_key or not kind:
        raise InvalidInput(_("提醒需要内容、类型和去重键"))
    if staff.status != StaffStatus.ACTIVE:
        return None
    kind, dedupe_key = kind[:32], dedupe_key[:200]
    with transaction.atomic():
        # One writer per member at a time, so two concurrent alerts cannot both pass the limit.
        StaffMember.objects.select_for_update().filter(pk=staff.pk).first()
        if StaffAlert.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        if _rate_limited(staff, customer, kind, timezone.now()):
            return None
        try:
            with transaction.atomic():
                alert = StaffAlert.objects.create(
                    staff=staff,
                    kind=kind,
                    text=text[:500],
                    customer=customer,
                    dedupe_key=dedupe_key,
                )
        except IntegrityError:
            return None
    tenant_id, alert_id = alert.tenant_id, alert.pk
    transaction.on_commit(lambda: _enqueue(tenant_id, alert_id))
    return alert


def _enqueue(tenant_id: int, alert_id: int) -> None:
    from siyu.workspace.tasks import deliver_alert

    try:
        deliver_alert.delay(tenant_id, alert_id)
    except Exception:
        # The broker is down: the alert stays pending for the periodic sweep.
        logger.exception("could not enqueue staff alert %s", alert_id)


def alert_deliver(*, alert_id: int) -> str:
    """Send one alert, once: the claim (pending → sent) comes first, so a retried job never
    sends twice; a failure is recorded on the row."""
    alert = StaffAlert.objects.select_related("staff").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("no such alert")
    claimed = StaffAlert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
        status=AlertStatus.SENT, sent_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    try:
        app_text_send(staff=alert.staff, text=alert.text)
    except WeComError as exc:
        StaffAlert.objects.filter(pk=alert_id).update(
            status=AlertStatus.FAILED, error=f"{exc.errcode} {exc}"[:300]
        )
        return "failed"
    return "sent"


# --- customer moments → alerts ----------------------------------------------------------------

CONTENT_OPENED = "content.opened"
CONTENT_READ = "content.read"
PRODUCT_VIEWED = "shop.product_viewed"
ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
CART_ABANDONED = "cart.abandoned"
# What the customer did themselves: one of these after a long silence is a "came back".
INTERACTIONS = frozenset(
    {
        "customer.added",
        "customer.joined_group",
        "fission.joined",
        CONTENT_OPENED,
        CONTENT_READ,
        "content.forwarded",
        PRODUCT_VIEWED,
        ORDER_CREATED,
        ORDER_PAID,
        CART_ABANDONED,
    }
)
# An add is where silence starts counting, not a moment to alert about (the welcome lane is).
ALERT_TRIGGERS = INTERACTIONS - {"customer.added"}


def _yuan(fen: Any) -> str:
    return f"{int(fen or 0) / 100:.2f}"


def _moment(event: Event, who: Customer) -> tuple[str, str] | None:
    """(text, dedupe key) of the alert an event deserves on its own, if any."""
    p = event.payload
    if event.type == CONTENT_READ:
        text = _("客户 %(who)s 打开了《%(title)s》，阅读 %(n)s 秒") % {
            "who": who,
            "title": p.get("title", ""),
            "n": int(p.get("seconds") or 0),
        }
        # One per read session (content writes one content.read per visit).
        session = p.get("visit_id") or event.pk
        return text, f"content.read:{who.pk}:{p.get('item_id')}:{session}"
    if event.type == PRODUCT_VIEWED:
        text = _("客户 %(who)s 正在浏览商品《%(name)s》") % {"who": who, "name": p.get("name", "")}
        return text, f"{event.type}:{event.pk}"
    if event.type == ORDER_CREATED:
        text = _("客户 %(who)s 下单了，金额 ¥%(yuan)s") % {
            "who": who,
            "yuan": _yuan(p.get("total_fen")),
        }
        return text, f"order.created:{p.get('order_id')}"
    if event.type == ORDER_PAID:
        text = _("客户 %(who)s 已付款 ¥%(yuan)s（第 %(n)s 单）") % {
            "who": who,
            "yuan": _yuan(p.get("amount_fen")),
            "n": int(p.get("paid_orders") or 1),
        }
        return text, f"order.paid:{p.get('order_id')}"
    if event.type == CART_ABANDONED:
        text = _("客户 %(who)s 的购物车（¥%(yuan)s）还没有结算") % {
            "who": who,
            "yuan": _yuan(p.get("total_fen")),
        }
        return text, f"cart.abandoned:{p.get('cart_id')}"
    return None  # content.opened alone waits for the read (one alert per read session)


def silence_days(event: Event) -> int | None:
    """Days the customer had been silent before ``event``, when that is at least
    ``SIYU_ALERT_SILENCE_DAYS``; None when they were active recently or never before."""
    previous = (
        Event.objects.filter(
            customer_id=event.customer_id,
            type__in=INTERACTIONS,
            occurred_at__lte=event.occurred_at,
        )
        .exclude(pk=event.pk)
        .order_by("-occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )
    if previous is None:
        return None
    days = (event.occurred_at - previous).days
    return days if days >= settings.SIYU_ALERT_SILENCE_DAYS else None


def _alerted_staff(event: Event, customer: Customer) -> StaffMember | None:
    staff_id = event.payload.get("staff_id")
    if isinstance(staff_id, int):
        member = StaffMember.objects.filter(pk=staff_id, status=StaffStatus.ACTIVE).first()
        if member is not None:
            return member
    relation = (
        StaffRelation.objects.select_related("staff")
        .filter(customer=customer, status=RelationStatus.ACTIVE, staff__status=StaffStatus.ACTIVE)
        .order_by("-added_at", "-pk")
        .first()
    )
    return relation.staff if relation is not None else None


def customer_event_alert(*, event: Event) -> StaffAlert | None:
    """Tell the member serving the customer about this moment, in one app message: what the
    customer did, prefixed when it ends a long silence."""
    if event.customer_id is None:
        return None
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is None:
        return None
    staff = _alerted_staff(event, customer)
    if staff is None:
        return None
    moment = _moment(event, customer)
    days = silence_days(event)
    if days is not None:
        label = moment[0] if moment else str(get_event_type(event.type).label)
        text = _("【沉默 %(days)s 天后回来】%(what)s") % {"days": days, "what": label}
        return alert_send(
            staff=staff,
            kind="came_back",
            text=text,
            customer=customer,
            dedupe_key=f"came_back:{event.pk}",
        )
    if moment is None:
        return None
    text, key = moment
    return alert_send(staff=staff, kind=event.type, text=text, customer=customer, dedupe_key=key)


# --- scripts (话术库) -------------------------------------------------------------------------


def category_save(
    *, actor: StaffMember, name: str, order: int = 0, category_id: int | None = None
) -> ScriptCategory:
    require(actor, Action.SCRIPTS_MANAGE)
    name = name.strip()
    if not name or len(name) > 32:
        raise InvalidInput(_("场景名称需要 1–32 个字"))
    if order < 0 or order > 32767:
        raise InvalidInput(_("排序超出范围"))
    same_name = ScriptCategory.objects.filter(name=name)
    if category_id is not None:
        same_name = same_name.exclude(pk=category_id)
    if same_name.exists():
        raise Conflict(_("场景名称已存在"))
    if category_id is None:
        return ScriptCategory.objects.create(name=name, order=order)
    category = ScriptCategory.objects.filter(pk=category_id).first()
    if category is None:
        raise NotFound(_("场景不存在"))
    category.name, category.order = name, order
    category.save(update_fields=["name", "order"])
    return category


def category_delete(*, actor: StaffMember, category_id: int) -> None:
    require(actor, Action.SCRIPTS_MANAGE)
    category = ScriptCategory.objects.filter(pk=category_id).first()
    if category is None:
        raise NotFound(_("场景不存在"))
    if category.scripts.exists():
        raise Conflict(_("场景下还有话术，请先删除或移走"))
    category.delete()


def _clean_attachments(attachments: list[dict[str, Any]]) -> list[dict[str, str]]:
    if len(attachments) > MAX_ATTACHMENTS:
        raise InvalidInput(_("附件最多 %(n)s 个") % {"n": MAX_ATTACHMENTS})
    cleaned = []
    for item in attachments:
        kind = str(item.get("kind", ""))
        url = str(item.get("url", ""))
        if kind not in ATTACHMENT_KINDS or not url.startswith(("https://", "http://")):
            raise InvalidInput(_("附件需要类型（图片/链接/文件/小程序）和 http(s) 地址"))
        cleaned.append({"kind": kind, "url": url[:500], "title": str(item.get("title", ""))[:64]})
    return cleaned


def script_save(
    *,
    actor: StaffMember,
    category_id: int,
    title: str,
    text: str,
    attachments: list[dict[str, Any]] | None = None,
    script_id: int | None = None,
) -> Script:
    require(actor, Action.SCRIPTS_MANAGE)
    title, text = title.strip(), text.strip()
    if not title or len(title) > 64:
        raise InvalidInput(_("标题需要 1–64 个字"))
    if not text or len(text) > 4000:
        raise InvalidInput(_("话术内容需要 1–4000 个字"))
    category = ScriptCategory.objects.filter(pk=category_id).first()
    if category is None:
        raise InvalidInput(_("场景不存在"))
    cleaned = _clean_attachments(attachments or [])
    if script_id is None:
        return Script.objects.create(
            category=category, title=title, text=text, attachments=cleaned, created_by=actor
        )
    script = Script.objects.filter(pk=script_id).first()
    if script is None:
        raise NotFound(_("话术不存在"))
    script.category, script.title, script.text, script.attachments = (
        category,
        title,
        text,
        cleaned,
    )
    script.save(update_fields=["category", "title", "text", "attachments", "updated_at"])
    return script


def script_delete(*, actor: StaffMember, script_id: int) -> None:
    require(actor, Action.SCRIPTS_MANAGE)
    deleted, _rows = Script.objects.filter(pk=script_id).delete()
    if not deleted:
        raise NotFound(_("话术不存在"))


def script_used(*, actor: StaffMember, script_id: int) -> Script:
    """A member copied the script: count the use (the library sorts by it)."""
    require(actor, Action.WORKSPACE_USE)
    if not Script.objects.filter(pk=script_id).update(usage_count=F("usage_count") + 1):
        raise NotFound(_("话术不存在"))
    return Script.objects.get(pk=script_id)
