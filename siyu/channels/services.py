"""Writes for channel codes: the code and its contact way in WeCom, its staff pool, and what
each add through it sets off (the welcome lane).

Every request is validated completely before WeCom is called, and the WeCom call happens
inside the transaction that writes the code, so a refusal from either side leaves nothing
behind. The welcome lane runs on its own queue: the add handler records a ``WelcomeSend`` with
a unique welcome code and its 20-second deadline in the add's transaction; the send job claims
it (pending → sending) and calls WeCom at most once per code, never after the deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, time, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.channels import events
from siyu.channels.models import (
    ChannelAdd,
    ChannelCode,
    ChannelMember,
    CodeKind,
    CodeStatus,
    WelcomeDefault,
    WelcomeSend,
    WelcomeStatus,
)
from siyu.channels.state import State, state_decode, state_encode
from siyu.channels.welcome import (
    ATTACHMENTS_MAX,
    welcome_clean,
    welcome_render,
    welcome_wants_nickname,
)
from siyu.core.errors import Conflict, InvalidInput, NotFound, SiyuError
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import Customer, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatStatus
from siyu.tags.models import Tag
from siyu.tags.services import tags_apply
from siyu.wecom.callback.fastlane import WelcomeCodeArrived
from siyu.wecom.client import governor
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import (
    InvalidExternalUser,
    NotExternalContact,
    TransientError,
    WeComError,
    WelcomeAlreadySent,
    WelcomeCodeError,
)

logger = logging.getLogger(__name__)

STATE_KIND = "ch"
NAME_MAX = 30  # the contact way's remark
POOL_MAX = 100  # WeCom: ≤100 members per contact way (41041)
TAGS_MAX = 100
# A welcome attempt is not started with less than this left: WeCom needs time to answer.
WELCOME_MARGIN = timedelta(milliseconds=500)
WELCOME_RETRY_DELAY = 0.5
# Each WeCom call of a welcome attempt (the nickname, the send) gives up after this.
WELCOME_CALL_TIMEOUT = 5.0


class WeComUnavailable(SiyuError):
    code = "wecom_error"
    status = 502


def _wecom_refused(exc: WeComError) -> SiyuError:
    return WeComUnavailable(
        _("企业微信返回错误 %(code)s：%(msg)s") % {"code": exc.errcode, "msg": exc.errmsg}
    )


def contact_way_quota() -> int:
    return min(settings.SIYU_CONTACT_WAY_QUOTA, governor.CONTACT_WAY_QUOTA)


# --- validation ------------------------------------------------------------------------------


def _clean_name(name: str, *, exclude: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput(_("请填写名称"))
    if len(name) > NAME_MAX:
        raise InvalidInput(_("名称不能超过 %(max)s 个字") % {"max": NAME_MAX})
    taken = ChannelCode.objects.filter(name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise Conflict(_("已有同名的渠道活码"))
    return name


def _clean_pool(
    kind: str, staff_ids: list[int], backup_ids: list[int]
) -> tuple[list[StaffMember], list[StaffMember]]:
    primary_ids = list(dict.fromkeys(staff_ids))
    backups = [i for i in dict.fromkeys(backup_ids) if i not in primary_ids]
    if not primary_ids:
        raise InvalidInput(_("请至少选择一名接待成员"), code="empty_pool")
    if kind == CodeKind.SINGLE and (len(primary_ids) != 1 or backups):
        raise InvalidInput(_("单人活码只能有一名接待成员，且没有备用成员"), code="bad_pool")
    if len(primary_ids) + len(backups) > POOL_MAX:
        raise InvalidInput(_("接待成员最多 %(max)s 名") % {"max": POOL_MAX}, code="bad_pool")
    members = StaffMember.objects.in_bulk(primary_ids + backups)
    missing = [i for i in primary_ids + backups if i not in members]
    if missing:
        raise NotFound(_("成员不存在"))
    unfit = [
        m.name
        for m in members.values()
        if m.status != StaffStatus.ACTIVE or not m.customer_contact_enabled
    ]
    if unfit:
        raise InvalidInput(
            _("成员 %(names)s 已离职、停用或没有客户联系权限") % {"names": "、".join(unfit)},
            code="inactive_member",
        )
    return [members[i] for i in primary_ids], [members[i] for i in backups]


def _clean_tags(tag_ids: list[int]) -> list[Tag]:
    wanted = list(dict.fromkeys(tag_ids))
    if len(wanted) > TAGS_MAX:
        raise InvalidInput(_("渠道标签最多 %(max)s 个") % {"max": TAGS_MAX})
    found = Tag.objects.in_bulk(wanted)
    if len(found) != len(wanted):
        raise NotFound(_("标签不存在"), code="unknown_tag")
    return [found[i] for i in wanted]


def _clean_rules(kind: str, daily_cap: int, work_start: time | None, work_end: time | None) -> None:
    if daily_cap < 0 or daily_cap > 100_000:
        raise InvalidInput(_("每日上限须在 0 到 100000 之间"))
    if (work_start is None) != (work_end is None):
        raise InvalidInput(_("上班时间和下班时间须同时填写"))
    if work_start is not None and work_start == work_end:
        raise InvalidInput(_("上班时间和下班时间不能相同"))
    if kind == CodeKind.SINGLE and (daily_cap or work_start is not None):
        raise InvalidInput(_("单人活码不支持每日上限和工作时间"))


def _clean_group(chat_id: str, welcome: dict[str, Any]) -> str:
    """A group chat of the company's that customers are invited to join, or ""."""
    chat_id = chat_id.strip()
    if not chat_id:
        return ""
    if not GroupChat.objects.filter(chat_id=chat_id, status=GroupChatStatus.ACTIVE).exists():
        raise NotFound(_("客户群不存在或已解散"), code="unknown_group")
    if len(welcome.get("attachments", [])) >= ATTACHMENTS_MAX:
        raise InvalidInput(
            _("自动拉群会在欢迎语中加入群二维码，附件最多再放 %(n)s 个")
            % {"n": ATTACHMENTS_MAX - 1},
            code="bad_attachment",
        )
    return chat_id


def used_contact_ways() -> int:
    """Contact ways and join ways Siyu's codes hold (WeCom counts both against one quota)."""
    return (
        ChannelCode.objects.exclude(config_id="").count()
        + ChannelCode.objects.exclude(join_config_id="").count()
    )


def _join_way_add(wecom: WeComClient, code: ChannelCode) -> None:
    config_id = wecom.add_join_way(
        {
            "scene": 2,
            "remark": code.name,
            "auto_create_room": 0,
            "chat_id_list": [code.group_chat_id],
            "state": code.state,
        }
    )
    code.join_config_id = config_id
    code.join_qr_code = str(wecom.get_join_way(config_id).get("qr_code", ""))


def _clean_remark(remark: str, description: str) -> tuple[str, str]:
    remark, description = remark.strip(), description.strip()
    if len(remark) > 20:
        raise InvalidInput(_("客户备注不能超过 20 个字"))
    if len(description) > 150:
        raise InvalidInput(_("客户描述不能超过 150 个字"))
    return remark, description


# --- the staff pool --------------------------------------------------------------------------


def _on_duty(code: ChannelCode, now: datetime) -> bool:
    if code.work_start is None or code.work_end is None:
        return True
    local = timezone.localtime(now).time()
    if code.work_start < code.work_end:
        return code.work_start <= local < code.work_end
    return local >= code.work_start or local < code.work_end  # a night shift across midnight


def _day_start(now: datetime) -> datetime:
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


def pool_userids(code: ChannelCode, *, now: datetime | None = None) -> list[str]:
    """The members WeCom should assign right now: primaries on duty and under their daily cap;
    when none is, the backups; when there are no active backups either, the active primaries
    regardless (a customer is never turned away)."""
    now = now or timezone.now()
    members = list(
        ChannelMember.objects.filter(code=code)
        .select_related("staff")
        .filter(staff__status=StaffStatus.ACTIVE, staff__customer_contact_enabled=True)
        .order_by("pk")
    )
    primaries = [m.staff for m in members if not m.backup]
    backups = [m.staff for m in members if m.backup]
    if code.kind == CodeKind.SINGLE:
        return [s.userid for s in primaries]
    eligible = primaries if _on_duty(code, now) else []
    if eligible and code.daily_cap:
        counts = dict(
            _adds_since(code, _day_start(now))
            .values_list("staff_id")
            .annotate(n=Count("pk"))
            .values_list("staff_id", "n")
        )
        eligible = [s for s in eligible if counts.get(s.pk, 0) < code.daily_cap]
    chosen = eligible or backups or primaries
    return [s.userid for s in chosen]


def _adds_since(code: ChannelCode, since: datetime) -> Any:
    return ChannelAdd.objects.filter(code=code, added_at__gte=since)


@contextmanager
def _wecom(client: WeComClient | None) -> Iterator[WeComClient]:
    """The caller's client, or one of our own that is closed afterwards."""
    if client is not None:
        yield client
        return
    with WeComClient.for_tenant(get_current_tenant()) as own:
        yield own


def _way_body(code: ChannelCode, users: list[str]) -> dict[str, Any]:
    return {"remark": code.name, "skip_verify": code.skip_verify, "user": users}


def channel_code_pool_refresh(*, code_id: int, client: WeComClient | None = None) -> bool:
    """Bring the contact way's member list in WeCom in line with the pool rules; returns
    whether WeCom was updated. Locks the code so concurrent refreshes write in turn."""
    with transaction.atomic():
        code = ChannelCode.objects.select_for_update().filter(pk=code_id).first()
        if code is None or code.status != CodeStatus.ACTIVE or not code.config_id:
            return False
        users = pool_userids(code)
        changed = bool(users) and users != code.wecom_users
        if changed:
            with _wecom(client) as wecom:
                wecom.update_contact_way({"config_id": code.config_id, "user": users})
            code.wecom_users = users
        code.pool_refreshed_at = timezone.now()
        code.save(update_fields=["wecom_users", "pool_refreshed_at", "updated_at"])
    return changed


def channel_pools_refresh(*, client: WeComClient | None = None) -> int:
    """Periodic, tenant in context: every active multi-member code; returns how many changed."""
    changed = 0
    ids = ChannelCode.objects.filter(status=CodeStatus.ACTIVE, kind=CodeKind.MULTI).values_list(
        "pk", flat=True
    )
    for code_id in list(ids):
        try:
            changed += channel_code_pool_refresh(code_id=code_id, client=client)
        except WeComError:
            logger.exception("could not refresh the pool of channel code %s", code_id)
    return changed


# --- codes -----------------------------------------------------------------------------------


def _set_members(code: ChannelCode, primary: list[StaffMember], backup: list[StaffMember]) -> None:
    ChannelMember.objects.filter(code=code).delete()
    ChannelMember.objects.bulk_create(
        [ChannelMember(tenant=code.tenant, code=code, staff=s) for s in primary]
        + [ChannelMember(tenant=code.tenant, code=code, staff=s, backup=True) for s in backup]
    )


def channel_code_create(
    *,
    actor: StaffMember,
    name: str,
    kind: str = CodeKind.MULTI,
    staff_ids: list[int],
    backup_ids: list[int] | None = None,
    tag_ids: list[int] | None = None,
    welcome: object = None,
    skip_verify: bool = True,
    daily_cap: int = 0,
    work_start: time | None = None,
    work_end: time | None = None,
    relation_remark: str = "",
    relation_description: str = "",
    group_chat_id: str = "",
    client: WeComClient | None = None,
) -> ChannelCode:
    """A new code and its contact way in WeCom (and a join way when customers are invited into
    a group chat), all or nothing."""
    require(actor, Action.CHANNELS_MANAGE)
    if kind not in CodeKind.values:
        raise InvalidInput(_("活码类型须为 single 或 multi"))
    name = _clean_name(name)
    primary, backup = _clean_pool(kind, staff_ids, backup_ids or [])
    tags = _clean_tags(tag_ids or [])
    clean_welcome = welcome_clean(welcome)
    _clean_rules(kind, daily_cap, work_start, work_end)
    remark, description = _clean_remark(relation_remark, relation_description)
    group = _clean_group(group_chat_id, clean_welcome)
    if used_contact_ways() + (2 if group else 1) > contact_way_quota():
        raise Conflict(
            _("联系我二维码数量已达企业微信上限 %(max)s，请先删除不用的活码")
            % {"max": contact_way_quota()},
            code="quota_exceeded",
        )
    with transaction.atomic():
        code = ChannelCode.objects.create(
            name=name,
            kind=kind,
            skip_verify=skip_verify,
            welcome=clean_welcome,
            relation_remark=remark,
            relation_description=description,
            daily_cap=daily_cap,
            work_start=work_start,
            work_end=work_end,
            group_chat_id=group,
            created_by=actor,
        )
        code.tags.set(tags)
        _set_members(code, primary, backup)
        code.state = state_encode(STATE_KIND, code.pk)
        users = pool_userids(code)
        body = {
            **_way_body(code, users),
            "type": 1 if kind == CodeKind.SINGLE else 2,
            "scene": 2,
            "state": code.state,
        }
        try:
            with _wecom(client) as wecom:
                way = wecom.add_contact_way(body)
                if group:
                    try:
                        _join_way_add(wecom, code)
                    except WeComError:
                        wecom.del_contact_way(way["config_id"])  # leave nothing behind
                        raise
        except WeComError as exc:
            raise _wecom_refused(exc) from exc
        code.config_id, code.qr_code, code.wecom_users = way["config_id"], way["qr_code"], users
        code.pool_refreshed_at = timezone.now()
        code.save()
        audit_record(actor=actor, action="channel_code.create", target=code, details=body)
    return code


_UNSET: Any = object()


def channel_code_update(
    *,
    actor: StaffMember,
    code_id: int,
    name: str | None = None,
    staff_ids: list[int] | None = None,
    backup_ids: list[int] | None = None,
    tag_ids: list[int] | None = None,
    welcome: object = _UNSET,
    skip_verify: bool | None = None,
    daily_cap: int | None = None,
    work_start: time | None = _UNSET,
    work_end: time | None = _UNSET,
    relation_remark: str | None = None,
    relation_description: str | None = None,
    group_chat_id: str | None = None,
    client: WeComClient | None = None,
) -> ChannelCode:
    """Change what is given; the contact way (and join way) in WeCom follow in the same
    transaction."""
    require(actor, Action.CHANNELS_MANAGE)
    code = _code(code_id)
    if name is not None:
        code.name = _clean_name(name, exclude=code.pk)
    pool = None
    if staff_ids is not None or backup_ids is not None:
        current = list(ChannelMember.objects.filter(code=code).values_list("staff_id", "backup"))
        pool = _clean_pool(
            code.kind,
            staff_ids if staff_ids is not None else [s for s, b in current if not b],
            backup_ids if backup_ids is not None else [s for s, b in current if b],
        )
    tags = _clean_tags(tag_ids) if tag_ids is not None else None
    if welcome is not _UNSET:
        code.welcome = welcome_clean(welcome)
    if skip_verify is not None:
        code.skip_verify = skip_verify
    if daily_cap is not None:
        code.daily_cap = daily_cap
    if work_start is not _UNSET:
        code.work_start = work_start
    if work_end is not _UNSET:
        code.work_end = work_end
    _clean_rules(code.kind, code.daily_cap, code.work_start, code.work_end)
    old_join = code.join_config_id
    previous_group = code.group_chat_id
    if group_chat_id is not None:
        code.group_chat_id = group_chat_id
    code.group_chat_id = _clean_group(code.group_chat_id, code.welcome)
    regroup = code.group_chat_id != previous_group
    adds_way = regroup and bool(code.group_chat_id) and not old_join
    if adds_way and used_contact_ways() + 1 > contact_way_quota():
        raise Conflict(_("联系我二维码数量已达企业微信上限"), code="quota_exceeded")
    code.relation_remark, code.relation_description = _clean_remark(
        relation_remark if relation_remark is not None else code.relation_remark,
        relation_description if relation_description is not None else code.relation_description,
    )
    with transaction.atomic():
        if pool is not None:
            _set_members(code, *pool)
        if tags is not None:
            code.tags.set(tags)
        users = pool_userids(code) if code.status == CodeStatus.ACTIVE else code.wecom_users
        body = {"config_id": code.config_id, **_way_body(code, users)}
        try:
            with _wecom(client) as wecom:
                wecom.update_contact_way(body)
                if regroup:
                    if old_join:
                        wecom.del_join_way(old_join)
                        code.join_config_id = code.join_qr_code = ""
                    if code.group_chat_id:
                        _join_way_add(wecom, code)
        except WeComError as exc:
            raise _wecom_refused(exc) from exc
        code.wecom_users = users
        code.save()
        audit_record(actor=actor, action="channel_code.update", target=code, details=body)
    return code


def _code(code_id: int) -> ChannelCode:
    code = ChannelCode.objects.filter(pk=code_id).first()
    if code is None:
        raise NotFound(_("渠道活码不存在"))
    return code


def channel_code_set_status(
    *, actor: StaffMember, code_id: int, status: str, client: WeComClient | None = None
) -> ChannelCode:
    """Pause or resume. WeCom cannot pause a contact way: a paused code keeps adding customers
    to its members (a printed code never turns into a dead end) and keeps attributing them to
    the channel, but sends no welcome message, applies no tags and stops rebalancing the pool."""
    require(actor, Action.CHANNELS_MANAGE)
    if status not in CodeStatus.values:
        raise InvalidInput(_("状态须为 active 或 paused"))
    with transaction.atomic():
        code = _code(code_id)
        code.status = status
        code.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor, action="channel_code.status", target=code, details={"status": status}
        )
    if status == CodeStatus.ACTIVE:
        try:
            channel_code_pool_refresh(code_id=code.pk, client=client)
        except WeComError as exc:
            raise _wecom_refused(exc) from exc
        code.refresh_from_db()
    return code


def channel_code_delete(
    *, actor: StaffMember, code_id: int, client: WeComClient | None = None
) -> None:
    """Delete the code and its contact way; its adds stay in the customers' history."""
    require(actor, Action.CHANNELS_MANAGE)
    with transaction.atomic():
        code = _code(code_id)
        audit_record(
            actor=actor,
            action="channel_code.delete",
            target=code,
            details={"config_id": code.config_id},
        )
        code.delete()
        with _wecom(client) as wecom:
            for delete, config_id in (
                (wecom.del_contact_way, code.config_id),
                (wecom.del_join_way, code.join_config_id),
            ):
                if not config_id:
                    continue
                try:
                    delete(config_id)
                except WeComError as exc:
                    if exc.errcode != 41044:  # already gone in WeCom
                        raise _wecom_refused(exc) from exc


def channel_code_qr(
    *, actor: StaffMember, code_id: int, client: WeComClient | None = None
) -> tuple[bytes, str]:
    """The QR image of the code's contact way, read through the gateway."""
    require(actor, Action.CHANNELS_MANAGE)
    code = _code(code_id)
    if not code.qr_code:
        raise NotFound(_("该活码没有二维码"))
    try:
        with _wecom(client) as wecom:
            return wecom.qr_image(code.qr_code)
    except WeComError as exc:
        raise _wecom_refused(exc) from exc


def welcome_default_set(*, actor: StaffMember, welcome: object) -> WelcomeDefault:
    require(actor, Action.CHANNELS_MANAGE)
    clean = welcome_clean(welcome)
    row, _created = WelcomeDefault.objects.update_or_create(
        tenant=get_current_tenant(), defaults={"welcome": clean}
    )
    audit_record(actor=actor, action="channel_welcome_default.set", target=row, details=clean)
    return row


# --- the add handler and the welcome lane ----------------------------------------------------


def channel_add_handle(*, relation: StaffRelation, event: Event, state: State) -> None:
    """An add came through code ``ch:<pk>`` (in the event delivery's transaction): record it,
    apply the channel tags, and queue the welcome message and the follow-up work."""
    if len(state.parts) != 1 or not state.parts[0].isdigit():
        return
    code = ChannelCode.objects.filter(pk=int(state.parts[0])).first()
    if code is None:
        return  # deleted since the customer scanned
    try:
        with transaction.atomic():
            add = ChannelAdd.objects.create(
                code=code,
                staff=relation.staff,
                customer_id=relation.customer_id,
                relation_id=relation.pk,
                event_id=event.pk,
                added_at=event.occurred_at,
            )
    except IntegrityError:
        return  # this add was handled already
    if code.status == CodeStatus.ACTIVE:
        tenant_id = code.tenant_id
        welcome_code = str(event.payload.get("welcome_code", ""))
        if welcome_code:
            _welcome_link(add, welcome_code, relation.external_userid)
        tag_ids = list(code.tags.values_list("pk", flat=True))
        if tag_ids:
            customer = Customer.objects.get(pk=relation.customer_id)
            tags_apply(customer, tag_ids, source="channel", staff=relation.staff)
        transaction.on_commit(lambda: _enqueue_follow_up(tenant_id, add.pk))
    # Last: every add through the code bumps this one row, and its lock is held until the
    # commit; taken first, it made concurrent adds wait for each other's whole transaction.
    ChannelCode.objects.filter(pk=code.pk).update(adds_total=F("adds_total") + 1)


def _send_now(send_id: int) -> None:
    welcome_send(send_id=send_id)


def _enqueue_welcome(tenant_id: int, send_id: int, countdown: float = 0) -> None:
    from siyu.channels.tasks import send_welcome

    try:
        send_welcome.apply_async((tenant_id, send_id), countdown=countdown)
    except Exception:
        # The broker is down: the sweep fails the send once its window has passed.
        logger.exception("could not enqueue welcome %s", send_id)


def _enqueue_follow_up(tenant_id: int, add_id: int) -> None:
    from siyu.channels.tasks import follow_up_add

    try:
        follow_up_add.delay(tenant_id, add_id)
    except Exception:
        logger.exception("could not enqueue the follow-up of channel add %s", add_id)


def _welcome_for(code: ChannelCode) -> dict[str, Any]:
    if code.welcome:
        return dict(code.welcome)
    default = WelcomeDefault.objects.first()
    return dict(default.welcome) if default is not None else {}


def _nickname(wecom: WeComClient, send: WelcomeSend) -> str:
    """The customer's WeChat name: from the profile if it has arrived, else asked of WeCom."""
    if send.add is not None:
        name = Customer.objects.filter(pk=send.add.customer_id).values_list("name", flat=True)
        if name and name[0]:
            return name[0]
    try:
        profile = wecom.external_contact(send.external_userid)
    except WeComError:
        return ""
    return str(profile["external_contact"].get("name", ""))


def _welcome_event(send: WelcomeSend, customer_id: int) -> None:
    """The customer's ``welcome.sent``/``failed`` once both the outcome and the add (which knows
    the customer) are there: whichever of the two comes second records it (both may: the
    idempotency key keeps one)."""
    event_record(
        type=events.WELCOME_SENT if send.status == WelcomeStatus.SENT else events.WELCOME_FAILED,
        source="system",
        customer_id=customer_id,
        idempotency_key=f"welcome:{send.pk}",
        payload={"code_id": send.code_id, "staff_userid": send.staff.userid, "reason": send.reason},
    )


_DONE = (WelcomeStatus.SENT, WelcomeStatus.FAILED)


def _welcome_done(send: WelcomeSend, status: str, reason: str, *, sent: bool) -> None:
    """Record the outcome of the claimed ``send``. Two autocommit statements: the UPDATE waits
    for _welcome_link's row lock if the add's processing holds it, so the add it links is seen
    by the read that follows; a link that comes later sees the outcome instead."""
    send.status, send.reason = status, reason[:200]
    send.sent_at = timezone.now() if sent else None
    done = WelcomeSend.objects.filter(pk=send.pk, status=WelcomeStatus.SENDING).update(
        status=send.status, reason=send.reason, sent_at=send.sent_at
    )
    if not done:
        return
    customer_id = (
        WelcomeSend.objects.filter(pk=send.pk, add__isnull=False)
        .values_list("add__customer_id", flat=True)
        .first()
    )
    if customer_id is not None:
        _welcome_event(send, customer_id)


def _welcome_link(add: ChannelAdd, welcome_code: str, external_userid: str) -> None:
    """The add's processing (in its transaction): attach the add to the send the welcome lane
    recorded, or record and send it now if the lane's job was lost."""
    send, created = (
        WelcomeSend.objects.select_for_update(of=("self",))
        .select_related("staff")
        .get_or_create(
            welcome_code=welcome_code,
            defaults={
                "add": add,
                "code": add.code,
                "staff": add.staff,
                "external_userid": external_userid,
                "deadline": add.added_at + governor.WELCOME_CODE_TTL,
            },
        )
    )
    if created:
        # Sent by this worker right after the commit; a crash in between leaves it to the
        # sweep (failed).
        transaction.on_commit(partial(_send_now, send.pk), robust=True)
        return
    if send.add_id is None:
        send.add = add
        send.save(update_fields=["add"])
        if send.status in _DONE:
            _welcome_event(send, add.customer_id)


def welcome_fast_lane(arrival: WelcomeCodeArrived) -> str:
    """The welcome lane proper (tenant in context): an add through an active code, straight
    from its callback, is recorded and sent before the add is processed (see the gateway's
    fastlane module). Adds that are not for an active code are left to the processing."""
    state = state_decode(arrival.state)
    if state is None or state.kind != STATE_KIND or len(state.parts) != 1:
        return "not_ours"
    code_id = int(state.parts[0]) if state.parts[0].isdigit() else 0
    code = ChannelCode.objects.filter(pk=code_id).first()
    staff = StaffMember.objects.filter(userid=arrival.userid).first()
    if code is None or staff is None or code.status != CodeStatus.ACTIVE:
        return "not_ours"  # the processing creates the member / skips paused codes
    # Recorded already claimed: the unique code makes this job its one sender. A savepoint only
    # inside a caller's transaction (eager jobs); the lane's own INSERT is a statement alone.
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with savepoint:
            send = WelcomeSend.objects.create(
                welcome_code=arrival.welcome_code,
                code=code,
                staff=staff,
                external_userid=arrival.external_userid,
                deadline=arrival.at + governor.WELCOME_CODE_TTL,
                status=WelcomeStatus.SENDING,
                attempts=1,
            )
    except IntegrityError:
        return "skipped"  # a redelivered job, or the processing got there first
    return _welcome_deliver(send)


def welcome_send(*, send_id: int, client: WeComClient | None = None) -> str:
    """Send one welcome message if its window is still open; returns what happened.

    The claim (pending → sending) makes one caller the sender. 41051/41096 mean WeCom has
    (or is) sending one for this code already: done, not retried. A transient failure goes
    back to pending and is tried again only while the window is open.
    """
    send = WelcomeSend.objects.select_related("add", "code", "staff").filter(pk=send_id).first()
    if send is None or send.status != WelcomeStatus.PENDING:
        return "skipped"
    claimed = WelcomeSend.objects.filter(pk=send.pk, status=WelcomeStatus.PENDING).update(
        status=WelcomeStatus.SENDING, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return "skipped"
    return _welcome_deliver(send, client=client)


def _welcome_deliver(send: WelcomeSend, *, client: WeComClient | None = None) -> str:
    """Send the claimed (``sending``) ``send`` unless its window has closed."""
    if timezone.now() + WELCOME_MARGIN > send.deadline:
        _welcome_done(send, WelcomeStatus.FAILED, "expired", sent=False)
        return "expired"
    code = send.code
    welcome = _welcome_for(code)
    if not welcome and not code.join_qr_code:
        _welcome_done(send, WelcomeStatus.FAILED, "no_message", sent=False)
        return "no_message"
    # No retries inside the call: a retry is a new claim, decided against the deadline.
    wecom = client or WeComClient.for_tenant(
        get_current_tenant(), max_retries=0, timeout=WELCOME_CALL_TIMEOUT
    )
    try:
        nickname = ""
        if welcome_wants_nickname(welcome):
            nickname = _nickname(wecom, send)
        text, attachments = welcome_render(welcome, nickname=nickname, staff_name=send.staff.name)
        if code.join_qr_code:
            pic_url = wecom.absolute_url(code.join_qr_code)
            attachments.append({"msgtype": "image", "image": {"pic_url": pic_url}})
        if timezone.now() + WELCOME_MARGIN > send.deadline:  # the nickname took the time left
            _welcome_done(send, WelcomeStatus.FAILED, "expired", sent=False)
            return "expired"
        wecom.send_welcome_msg(welcome_code=send.welcome_code, text=text, attachments=attachments)
    except WelcomeAlreadySent as exc:
        _welcome_done(send, WelcomeStatus.FAILED, f"already_sent:{exc.errcode}", sent=False)
        return "already_sent"
    except WelcomeCodeError as exc:
        _welcome_done(send, WelcomeStatus.FAILED, f"expired:{exc.errcode}", sent=False)
        return "expired"
    except TransientError as exc:
        if timezone.now() + WELCOME_MARGIN + timedelta(seconds=WELCOME_RETRY_DELAY) < send.deadline:
            WelcomeSend.objects.filter(pk=send.pk, status=WelcomeStatus.SENDING).update(
                status=WelcomeStatus.PENDING, reason=str(exc)[:200]
            )
            tenant_id = get_current_tenant().pk
            _enqueue_welcome(tenant_id, send.pk, countdown=WELCOME_RETRY_DELAY)
            return "retry"
        _welcome_done(send, WelcomeStatus.FAILED, f"expired:{exc.errcode}", sent=False)
        return "expired"
    except WeComError as exc:
        _welcome_done(send, WelcomeStatus.FAILED, f"wecom:{exc.errcode}", sent=False)
        return "failed"
    finally:
        if client is None:
            wecom.close()
    _welcome_done(send, WelcomeStatus.SENT, "", sent=True)
    return "sent"


def welcome_sends_sweep(*, now: datetime | None = None) -> int:
    """Periodic, tenant in context: sends whose window closed while pending or mid-call (the
    job was lost, the worker died) are recorded as failed; nothing is sent late. An attempt may
    still be waiting for WeCom's answer just past the deadline: those are left alone until its
    calls have timed out."""
    now = now or timezone.now()
    settled = now - timedelta(seconds=2 * WELCOME_CALL_TIMEOUT)
    stuck = list(
        WelcomeSend.objects.filter(
            status__in=[WelcomeStatus.PENDING, WelcomeStatus.SENDING], deadline__lt=settled
        )
    )
    for send in stuck:
        WelcomeSend.objects.filter(pk=send.pk, status=WelcomeStatus.PENDING).update(
            status=WelcomeStatus.SENDING
        )
        _welcome_done(send, WelcomeStatus.FAILED, "expired:lost", sent=False)
    return len(stuck)


def _notify_text(add: ChannelAdd, customer: Customer, code: ChannelCode) -> str:
    name = customer.name or _("新客户")
    text = _("新客户 %(name)s 通过「%(channel)s」添加了你") % {"name": name, "channel": code.name}
    tags = list(code.tags.values_list("name", flat=True))
    if tags:
        text += "\n" + _("渠道标签：%(tags)s") % {"tags": "、".join(tags)}
    return text


def channel_add_follow_up(*, add_id: int, client: WeComClient | None = None) -> None:
    """After the welcome: the relation's remark/description in WeCom, the pool rebalanced
    (the member may have reached the daily cap), and the receiving member told who this is.
    The notification is last, so a retry after a failure before it sends it once."""
    add = ChannelAdd.objects.select_related("code", "staff").filter(pk=add_id).first()
    if add is None:
        return
    code = add.code
    relation = StaffRelation.objects.get(pk=add.relation_id)
    tenant = get_current_tenant()
    with _wecom(client) as wecom:
        if code.relation_remark or code.relation_description:
            body: dict[str, Any] = {
                "userid": add.staff.userid,
                "external_userid": relation.external_userid,
            }
            if code.relation_remark:
                body["remark"] = code.relation_remark
            if code.relation_description:
                body["description"] = code.relation_description
            try:
                wecom.remark(**body)
            except (NotExternalContact, InvalidExternalUser):
                pass  # deleted again within seconds; nothing to remark
            else:
                StaffRelation.objects.filter(pk=relation.pk).update(
                    **{k: v for k, v in body.items() if k in ("remark", "description")}
                )
        if code.kind == CodeKind.MULTI and code.daily_cap:
            # Only a cap can make one more add change the pool (the clock and departures are
            # the minute job's); the refresh locks the code's row, which every add contends for.
            channel_code_pool_refresh(code_id=code.pk, client=wecom)
    if not tenant.agent_id or not tenant.app_secret:
        return  # no self-built app configured: nothing to notify through
    claimed = ChannelAdd.objects.filter(pk=add.pk, notified_at__isnull=True).update(
        notified_at=timezone.now()
    )
    if claimed != 1:
        return
    customer = Customer.objects.get(pk=add.customer_id)
    try:
        with WeComClient.for_tenant(tenant, app="agent") as agent:
            agent.send_app_message(
                {
                    "touser": add.staff.userid,
                    "msgtype": "text",
                    "agentid": tenant.agent_id,
                    "text": {"content": _notify_text(add, customer, code)},
                }
            )
    except TransientError:
        ChannelAdd.objects.filter(pk=add.pk).update(notified_at=None)  # the job retries
        raise
