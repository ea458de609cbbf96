"""Writes of fission campaigns: campaigns, participants, invites, rewards and notices.

The formula from the seeds is *source → fission progress → task notification*: every add
through a participant's code is recorded with the reason it counts or not, the participant's
progress moves (and is pushed to them), and the member who received the new customer is told
whose poster brought them.
"""

import logging
import secrets
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image, UnidentifiedImageError

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.channels.state import state_encode
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.services import event_record
from siyu.core.tenancy import get_current_tenant
from siyu.customers.events import CUSTOMER_ADDED
from siyu.customers.merging import customer_survivor
from siyu.customers.models import (
    Customer,
    CustomerIdentity,
    IdentityKind,
    RelationStatus,
    StaffRelation,
)
from siyu.customers.services import customer_ensure
from siyu.fission import events
from siyu.fission.models import (
    Campaign,
    CampaignKind,
    Invite,
    InviteStatus,
    Notice,
    NoticeAudience,
    NoticeStatus,
    Participant,
    RewardGrant,
    RewardKind,
    RewardTier,
)
from siyu.fission.poster import LAYOUT_KEYS, poster_render
from siyu.promotions.selectors import coupon_template_usable
from siyu.tags.models import Tag
from siyu.tags.services import tags_apply
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import TransientError, WeComError
from siyu.workspace.services import app_text_send, task_create

logger = logging.getLogger(__name__)

STATE_KIND = "fx"
TASK_KIND = "fission"
MAX_TIERS = 5
MAX_THRESHOLD = 10_000
MAX_STAFF = 100  # WeCom's limit on the members of one contact way
MAX_GROUPS = 20
GROUP_CAPACITY = 500  # WeCom's cap on a customer group's members
MAX_WINDOW_HOURS = 30 * 24
MAX_ARTWORK_BYTES = 5 * 1024 * 1024
MAX_ARTWORK_SIDE = 4000


def grant_task_key(grant_id: int) -> str:
    """The workspace task handing over a staff_task reward: one per grant."""
    return f"fission:grant:{grant_id}"


# --- campaigns -----------------------------------------------------------------------------


def _aware(value: datetime, what: str) -> datetime:
    if timezone.is_naive(value):
        raise InvalidInput(_("%(what)s 需要带时区的时间") % {"what": what})
    return value


def _check_period(starts_at: datetime, ends_at: datetime) -> None:
    _aware(starts_at, _("开始时间"))
    _aware(ends_at, _("结束时间"))
    if ends_at <= starts_at:
        raise InvalidInput(_("结束时间必须晚于开始时间"), code="invalid_period")


def _check_window(hours: int) -> int:
    if not 0 <= hours <= MAX_WINDOW_HOURS:
        raise InvalidInput(_("删除回收窗口须在 0 到 %(max)s 小时之间") % {"max": MAX_WINDOW_HOURS})
    return hours


def _pool(staff_ids: list[int]) -> list[StaffMember]:
    ids = set(staff_ids)
    if not ids or len(ids) > MAX_STAFF:
        raise InvalidInput(_("请选择 1 到 %(max)s 位承接成员") % {"max": MAX_STAFF})
    members = list(StaffMember.objects.filter(pk__in=ids, status=StaffStatus.ACTIVE))
    if len(members) != len(ids):
        raise InvalidInput(_("承接成员不存在或已离职"), code="unknown_staff")
    return members


def _tiers(tiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise InvalidInput(_("请设置 1 到 %(max)s 档奖励") % {"max": MAX_TIERS})
    clean = []
    for tier in tiers:
        threshold = tier.get("threshold")
        kind = tier.get("kind")
        payload = str(tier.get("payload") or "").strip()
        stock = tier.get("stock")
        if not isinstance(threshold, int) or not 1 <= threshold <= MAX_THRESHOLD:
            raise InvalidInput(_("奖励门槛须为 1 到 %(max)s 人") % {"max": MAX_THRESHOLD})
        if kind not in RewardKind.values:
            raise InvalidInput(_("未知的奖励类型 %(kind)s") % {"kind": kind})
        if not payload or len(payload) > 500:
            raise InvalidInput(_("请填写奖励内容（不超过 500 字）"))
        if kind == RewardKind.LINK and not payload.startswith(("https://", "http://")):
            raise InvalidInput(_("领奖链接须以 http:// 或 https:// 开头"))
        if not isinstance(stock, int) or stock < 1:
            raise InvalidInput(
                _("第 %(n)s 人档的奖励没有库存：请填写至少 1 份") % {"n": threshold},
                code="no_stock",
            )
        coupon_template_id = tier.get("coupon_template_id")
        if coupon_template_id is not None:
            _check_coupon_template(kind, coupon_template_id)
        clean.append(
            {
                "threshold": threshold,
                "kind": kind,
                "payload": payload,
                "stock": stock,
                "coupon_template_id": coupon_template_id,
            }
        )
    if len({t["threshold"] for t in clean}) != len(clean):
        raise InvalidInput(_("奖励门槛不能重复"))
    return sorted(clean, key=lambda t: t["threshold"])


def _check_coupon_template(kind: str, template_id: object) -> None:
    if kind != RewardKind.COUPON:
        raise InvalidInput(_("只有优惠券奖励可以关联优惠券模板"))
    if not isinstance(template_id, int) or not coupon_template_usable(template_id=template_id):
        raise InvalidInput(_("优惠券模板不存在或已停用"), code="unknown_coupon_template")


def _groups(kind: str, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if kind == CampaignKind.TASK:
        if groups:
            raise InvalidInput(_("任务宝活动不设客户群"))
        return []
    if not 1 <= len(groups) <= MAX_GROUPS:
        raise InvalidInput(_("群裂变请设置 1 到 %(max)s 个客户群") % {"max": MAX_GROUPS})
    clean = []
    for group in groups:
        chat_id = str(group.get("chat_id") or "").strip()
        capacity = group.get("capacity")
        if not chat_id or len(chat_id) > 128:
            raise InvalidInput(_("客户群 ID 不能为空"))
        if not isinstance(capacity, int) or not 1 <= capacity <= GROUP_CAPACITY:
            raise InvalidInput(_("群容量须为 1 到 %(max)s 人") % {"max": GROUP_CAPACITY})
        clean.append(
            {"chat_id": chat_id, "name": str(group.get("name") or "")[:64], "capacity": capacity}
        )
    if len({g["chat_id"] for g in clean}) != len(clean):
        raise InvalidInput(_("客户群不能重复"))
    return clean


def _check_tags(tag_ids: list[int]) -> list[int]:
    ids = sorted(set(tag_ids))
    if Tag.objects.filter(pk__in=ids).count() != len(ids):
        raise InvalidInput(_("渠道标签不存在"), code="unknown_tag")
    return ids


def _artwork(data: bytes | None, layout: dict[str, Any] | None) -> dict[str, Any] | None:
    """The validated layout for ``data``; a template missing its artwork or a position is
    refused here, before anything is stored."""
    if data is None and not layout:
        return None
    if data is None:
        raise InvalidInput(_("海报模板缺少底图"), code="poster_incomplete")
    if not layout:
        raise InvalidInput(_("海报模板缺少头像、昵称和二维码的位置"), code="poster_incomplete")
    if len(data) > MAX_ARTWORK_BYTES:
        raise InvalidInput(_("海报底图不能超过 5 MB"))
    try:
        with Image.open(BytesIO(data)) as image:
            image.verify()
        with Image.open(BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(_("海报底图不是有效的图片"), code="poster_invalid") from exc
    if width > MAX_ARTWORK_SIDE or height > MAX_ARTWORK_SIDE:
        raise InvalidInput(_("海报底图的边长不能超过 %(max)s 像素") % {"max": MAX_ARTWORK_SIDE})
    clean: dict[str, Any] = {}
    for key in LAYOUT_KEYS:
        spot = layout.get(key)
        if not isinstance(spot, dict):
            raise InvalidInput(
                _("海报模板缺少 %(key)s 的位置") % {"key": key}, code="poster_incomplete"
            )
        x, y, size = spot.get("x"), spot.get("y"), spot.get("size")
        if not (isinstance(x, int) and isinstance(y, int) and isinstance(size, int)):
            raise InvalidInput(_("%(key)s 的位置须为整数") % {"key": key})
        if x < 0 or y < 0 or size < 8:
            raise InvalidInput(_("%(key)s 的位置须为非负整数，大小至少 8") % {"key": key})
        if x + size > width or y + size > height:
            raise InvalidInput(_("%(key)s 超出了底图范围") % {"key": key})
        clean[key] = {"x": x, "y": y, "size": size}
    return clean


@transaction.atomic
def campaign_create(
    *,
    actor: StaffMember,
    kind: str,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    staff_ids: list[int],
    tiers: list[dict[str, Any]],
    tag_ids: list[int] | None = None,
    delete_window_hours: int = 72,
    description: str = "",
    group_chats: list[dict[str, Any]] | None = None,
    artwork: bytes | None = None,
    artwork_name: str = "artwork.png",
    layout: dict[str, Any] | None = None,
) -> Campaign:
    """A campaign, its tiers and poster template, all validated before anything is written."""
    require(actor, Action.FISSION_MANAGE)
    if kind not in CampaignKind.values:
        raise InvalidInput(_("未知的活动类型 %(kind)s") % {"kind": kind})
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写活动名称（不超过 64 字）"))
    if len(description) > 500:
        raise InvalidInput(_("说明不能超过 500 字"))
    _check_period(starts_at, ends_at)
    members = _pool(staff_ids)
    clean_tiers = _tiers(tiers)
    groups = _groups(kind, group_chats or [])
    tags = _check_tags(tag_ids or [])
    clean_layout = _artwork(artwork, layout)
    campaign = Campaign.objects.create(
        kind=kind,
        name=name,
        description=description,
        starts_at=starts_at,
        ends_at=ends_at,
        tag_ids=tags,
        delete_window_hours=_check_window(delete_window_hours),
        group_chats=groups,
        poster_layout=clean_layout or {},
        created_by=actor,
    )
    campaign.staff.set(members)
    RewardTier.objects.bulk_create(
        RewardTier(tenant=campaign.tenant, campaign=campaign, **tier) for tier in clean_tiers
    )
    if artwork is not None:
        campaign.poster_artwork.save(f"{campaign.pk}-{artwork_name[-40:]}", ContentFile(artwork))
    return campaign


@transaction.atomic
def campaign_update(
    *,
    campaign: Campaign,
    name: str | None = None,
    description: str | None = None,
    ends_at: datetime | None = None,
    delete_window_hours: int | None = None,
) -> Campaign:
    """Change what may change while a campaign runs; kind, tiers and pool stay as created (the
    participants' codes and promises were made with them)."""
    if name is not None:
        name = name.strip()
        if not name or len(name) > 64:
            raise InvalidInput(_("请填写活动名称（不超过 64 字）"))
        campaign.name = name
    if description is not None:
        if len(description) > 500:
            raise InvalidInput(_("说明不能超过 500 字"))
        campaign.description = description
    if ends_at is not None:
        _check_period(campaign.starts_at, ends_at)
        campaign.ends_at = ends_at
    if delete_window_hours is not None:
        campaign.delete_window_hours = _check_window(delete_window_hours)
    campaign.save()
    return campaign


@transaction.atomic
def campaign_poster_set(
    *, campaign: Campaign, artwork: bytes, layout: dict[str, Any], artwork_name: str = "art.png"
) -> Campaign:
    """Replace the poster template; every participant's poster is drawn again on next view."""
    clean = _artwork(artwork, layout)
    campaign.poster_layout = clean or {}
    campaign.poster_artwork.save(f"{campaign.pk}-{artwork_name[-40:]}", ContentFile(artwork))
    Participant.objects.filter(campaign=campaign).update(poster="", poster_error="")
    return campaign


# --- participants --------------------------------------------------------------------------


def participant_join(*, campaign: Campaign, customer: Customer) -> Participant:
    """Make ``customer`` a participant (once), with their personal code and poster.

    The row is committed before WeCom is asked for the contact way, so a WeCom failure leaves
    a participant whose code is made on their next visit rather than a lost visit.
    """
    participant = Participant.objects.filter(campaign=campaign, customer=customer).first()
    if participant is None:
        now = timezone.now()
        if not campaign.starts_at <= now < campaign.ends_at:
            raise InvalidInput(_("活动未开始或已结束"), code="not_running")
        participant = _participant_create(campaign, customer)
    if not participant.config_id:
        _code_create(participant)
    if participant.config_id and not participant.poster:
        # Drawn only with the code on it: a poster without one would be cached useless.
        poster_render(participant)
    return participant


def _participant_create(campaign: Campaign, customer: Customer) -> Participant:
    first = (
        Invite.objects.filter(campaign=campaign, invitee=customer)
        .exclude(status=InviteStatus.REPEAT)
        .first()
    )
    try:
        with transaction.atomic():
            participant = Participant.objects.create(
                campaign=campaign,
                customer=customer,
                referrer=first.participant if first else None,
            )
            participant.state = state_encode(STATE_KIND, campaign.pk, participant.pk)
            participant.save(update_fields=["state"])
            event_record(
                type=events.FISSION_JOINED,
                source="h5",
                customer_id=customer.pk,
                payload={
                    "campaign_id": campaign.pk,
                    "participant_id": participant.pk,
                    "referrer_id": participant.referrer_id,
                },
            )
    except IntegrityError:
        # The same visitor opened the page twice at once: the other request made the row.
        return Participant.objects.get(campaign=campaign, customer=customer)
    return participant


def _code_create(participant: Participant) -> None:
    campaign = participant.campaign
    users = sorted(
        campaign.staff.filter(status=StaffStatus.ACTIVE).values_list("userid", flat=True)
    )
    if not users:
        logger.warning("fission campaign %s has no active member for codes", campaign.pk)
        return
    body = {
        "type": 1 if len(users) == 1 else 2,
        "scene": 2,
        "user": users,
        "state": participant.state,
        "skip_verify": True,
        "remark": f"fission {campaign.pk}"[:30],
    }
    try:
        with WeComClient.for_tenant(get_current_tenant()) as wecom:
            way = wecom.add_contact_way(body)
    except WeComError as exc:
        logger.warning("contact way for participant %s failed: %s", participant.pk, exc)
        return
    claimed = Participant.objects.filter(pk=participant.pk, config_id="").update(
        config_id=way["config_id"], qr_code=way["qr_code"]
    )
    if claimed:
        participant.config_id, participant.qr_code = way["config_id"], way["qr_code"]
        return
    # A concurrent visit made the code first; ours is surplus (best effort to remove it).
    participant.refresh_from_db()
    try:
        with WeComClient.for_tenant(get_current_tenant()) as wecom:
            wecom.del_contact_way(way["config_id"])
    except WeComError:
        logger.warning("surplus contact way %s not deleted", way["config_id"])


# --- invites (called by the add and delete subscribers) -----------------------------------


def _invitee(relation: StaffRelation) -> Customer:
    """The person behind the add. WeCom's add callback names only the external_userid; a
    self-invite, or a customer known from an H5 visit, is recognised by unionid, so the contact
    is read through the gateway first and the customer core links (or merges) by it. A transient
    WeCom failure raises, and the delivery retries later."""
    customer = relation.customer
    if CustomerIdentity.objects.filter(customer=customer, kind=IdentityKind.UNIONID).exists():
        return customer
    try:
        with WeComClient.for_tenant(get_current_tenant()) as wecom:
            contact = wecom.external_contact(relation.external_userid)
    except TransientError:
        raise
    except WeComError as exc:
        logger.info("contact %s not read: %s", relation.external_userid, exc)
        return customer
    ext = contact.get("external_contact", {})
    return customer_ensure(
        external_userid=relation.external_userid, unionid=ext.get("unionid", ""), profile=ext
    )


def _known_before(invitee: Customer, relation: StaffRelation, event: Event) -> bool:
    """Was the invitee a friend of anyone in the tenant before this add? Another relation
    created earlier, or an earlier add event (a re-add of the same relation), says so."""
    other = (
        StaffRelation.objects.filter(customer=invitee, created_at__lte=relation.created_at)
        .exclude(pk=relation.pk)
        .exists()
    )
    if other:
        return True
    return Event.objects.filter(
        customer_id=invitee.pk, type=CUSTOMER_ADDED, pk__lt=event.pk
    ).exists()


def _classify(
    participant: Participant, invitee: Customer, relation: StaffRelation, event: Event
) -> str:
    campaign = participant.campaign
    if not campaign.starts_at <= event.occurred_at < campaign.ends_at:
        return InviteStatus.OUTSIDE
    if invitee.pk == customer_survivor(participant.customer).pk:
        return InviteStatus.SELF
    if _known_before(invitee, relation, event):
        return InviteStatus.NOT_NEW
    return InviteStatus.COUNTED


def invite_record(
    *, relation: StaffRelation, event: Event, campaign_id: int, participant_id: int
) -> Invite | None:
    """One add through a participant's code. Runs inside the event delivery's transaction.

    The first sighting of an invitee per campaign is unique, so of two concurrent adds of the
    same person one is recorded as a repeat; the count moves with ``F()`` under the row lock
    the UPDATE takes, so concurrent counted adds are each counted exactly once.
    """
    participant = (
        Participant.objects.select_related("campaign", "customer", "referrer__customer")
        .filter(pk=participant_id, campaign_id=campaign_id)
        .first()
    )
    if participant is None:
        logger.info("add with state of unknown participant %s/%s", campaign_id, participant_id)
        return None
    existing = Invite.objects.filter(event_id=event.pk).first()
    if existing is not None:
        return existing
    invitee = _invitee(relation)
    relation.refresh_from_db()  # a merge may have moved it to the surviving customer
    status = _classify(participant, invitee, relation, event)
    fields = {
        "campaign": participant.campaign,
        "participant": participant,
        "invitee": invitee,
        "staff": relation.staff,
        "event_id": event.pk,
        "at": event.occurred_at,
    }
    try:
        with transaction.atomic():
            invite = Invite.objects.create(status=status, **fields)
    except IntegrityError:
        invite = Invite.objects.create(status=InviteStatus.REPEAT, **fields)
    event_record(
        type=events.FISSION_INVITED,
        source="system",
        customer_id=invitee.pk,
        payload={
            "campaign_id": participant.campaign_id,
            "participant_id": participant.pk,
            "status": invite.status,
        },
    )
    _notify_receiver(invite, participant)
    if invite.status == InviteStatus.COUNTED:
        _count(invite, participant)
    return invite


def _count(invite: Invite, participant: Participant) -> None:
    campaign = participant.campaign
    Participant.objects.filter(pk=participant.pk).update(counted=F("counted") + 1)
    counted = Participant.objects.values_list("counted", flat=True).get(pk=participant.pk)
    if campaign.tag_ids:
        tags_apply(invite.invitee, list(campaign.tag_ids), source="channel", staff=invite.staff)
    granted = _grant_reached(participant, counted)
    if not granted:
        _notify_participant(participant, _progress_text(participant, counted))


def _progress_text(participant: Participant, counted: int) -> str:
    campaign = participant.campaign
    following = RewardTier.objects.filter(campaign=campaign, threshold__gt=counted).first()
    if following is None:
        return _("【%(c)s】已有 %(n)s 位好友助力，全部奖励已达成。") % {
            "c": campaign.name,
            "n": counted,
        }
    return _("【%(c)s】已有 %(n)s 位好友助力，再邀 %(left)s 位可得：%(reward)s") % {
        "c": campaign.name,
        "n": counted,
        "left": following.threshold - counted,
        "reward": following.payload,
    }


def _grant_reached(participant: Participant, counted: int) -> list[RewardGrant]:
    """Issue each reached tier once. Stock is cut by a conditional UPDATE, never below zero;
    a tier reached after its stock ran out is recorded (``in_stock=False``) for operations."""
    granted = []
    for tier in RewardTier.objects.filter(campaign=participant.campaign, threshold__lte=counted):
        if RewardGrant.objects.filter(participant=participant, tier=tier).exists():
            continue
        try:
            with transaction.atomic():
                grant = RewardGrant.objects.create(
                    participant=participant,
                    tier=tier,
                    kind=tier.kind,
                    payload=tier.payload,
                    code=secrets.token_hex(8),
                )
        except IntegrityError:
            continue
        taken = RewardTier.objects.filter(pk=tier.pk, stock__gt=0).update(
            stock=F("stock") - 1, issued=F("issued") + 1
        )
        staff = _serving_staff(participant)
        if not taken:
            grant.in_stock = False
            grant.save(update_fields=["in_stock"])
            text = _("【%(c)s】达成 %(n)s 人，但奖励已发完，请联系运营。") % {
                "c": participant.campaign.name,
                "n": tier.threshold,
            }
        else:
            text = _("【%(c)s】恭喜达成 %(n)s 人！奖励：%(reward)s（领奖码 %(code)s）") % {
                "c": participant.campaign.name,
                "n": tier.threshold,
                "reward": tier.payload,
                "code": grant.code,
            }
            if tier.kind == RewardKind.STAFF_TASK and staff is not None:
                task_create(
                    staff=staff,
                    kind=TASK_KIND,
                    customer=participant.customer,
                    title=_("请为 %(who)s 发放奖励：%(reward)s")
                    % {
                        "who": participant.customer,
                        "reward": tier.payload,
                    },
                    body=tier.payload,
                    source=f"fission:{participant.campaign_id}",
                    dedupe_key=grant_task_key(grant.pk),
                )
        event_record(
            type=events.FISSION_REWARDED,
            source="system",
            customer_id=participant.customer_id,
            payload={"tier_id": tier.pk, "grant_id": grant.pk, "in_stock": bool(taken)},
        )
        _notify_participant(participant, text)
        granted.append(grant)
    return granted


def invites_deleted(*, customer_id: int, staff_userid: str, at: datetime) -> int:
    """The invitee ended their relation with the member who received them: counted invites
    within their campaign's window are subtracted (rewards already issued stay issued)."""
    subtracted = 0
    invites = Invite.objects.select_related("campaign", "participant__campaign").filter(
        invitee_id=customer_id, staff__userid=staff_userid, status=InviteStatus.COUNTED
    )
    for invite in invites:
        window = timedelta(hours=invite.campaign.delete_window_hours)
        if at - invite.at > window:
            continue
        claimed = Invite.objects.filter(pk=invite.pk, status=InviteStatus.COUNTED).update(
            status=InviteStatus.DELETED, deleted_at=at
        )
        if not claimed:
            continue
        Participant.objects.filter(pk=invite.participant_id, counted__gt=0).update(
            counted=F("counted") - 1
        )
        subtracted += 1
        participant = invite.participant
        counted = Participant.objects.values_list("counted", flat=True).get(pk=participant.pk)
        _notify_participant(
            participant,
            _("【%(c)s】好友 %(who)s 已删除好友，不再计入；当前有效助力 %(n)s 位。")
            % {"c": invite.campaign.name, "who": invite.invitee, "n": counted},
        )
    return subtracted


# --- notices -------------------------------------------------------------------------------


def _serving_staff(participant: Participant) -> StaffMember | None:
    """The member who serves the participant: their latest active relation in the campaign's
    pool, else any of the pool."""
    pool = participant.campaign.staff.filter(status=StaffStatus.ACTIVE)
    relation = (
        StaffRelation.objects.select_related("staff")
        .filter(customer_id=participant.customer_id, status=RelationStatus.ACTIVE, staff__in=pool)
        .order_by("-added_at", "-pk")
        .first()
    )
    return relation.staff if relation is not None else pool.order_by("pk").first()


def _notify(participant: Participant, audience: str, staff: StaffMember, text: str) -> None:
    notice = Notice.objects.create(
        campaign=participant.campaign,
        participant=participant,
        audience=audience,
        staff=staff,
        text=text[:500],
    )
    tenant_id, notice_id = notice.tenant_id, notice.pk
    transaction.on_commit(lambda: _enqueue(tenant_id, notice_id))


def _enqueue(tenant_id: int, notice_id: int) -> None:
    from siyu.fission.tasks import send_notice

    try:
        send_notice.delay(tenant_id, notice_id)
    except Exception:
        # The broker is down: the notice stays pending for the periodic sweep.
        logger.exception("could not enqueue fission notice %s", notice_id)


def _notify_participant(participant: Participant, text: str) -> None:
    staff = _serving_staff(participant)
    if staff is not None:
        _notify(participant, NoticeAudience.PARTICIPANT, staff, text)


def _notify_receiver(invite: Invite, participant: Participant) -> None:
    referrer = participant.referrer.customer if participant.referrer else None
    text = _("【%(c)s】新客户 %(who)s 通过 %(p)s 的海报添加了你（%(status)s）%(ref)s") % {
        "c": participant.campaign.name,
        "who": invite.invitee,
        "p": participant.customer,
        "status": invite.get_status_display(),
        "ref": _("；%(p)s 由 %(r)s 推荐") % {"p": participant.customer, "r": referrer}
        if referrer
        else "",
    }
    _notify(participant, NoticeAudience.STAFF, invite.staff, text)


def notice_send(*, notice_id: int) -> str:
    """Send one notice as a WeCom app message to its member, once: the claim (pending → sent)
    comes first, so a retried job never sends twice; a failure is recorded on the row."""
    notice = Notice.objects.select_related("staff").filter(pk=notice_id).first()
    if notice is None:
        raise NotFound("no such notice")
    claimed = Notice.objects.filter(pk=notice_id, status=NoticeStatus.PENDING).update(
        status=NoticeStatus.SENT, sent_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    text = notice.text
    if notice.audience == NoticeAudience.PARTICIPANT:
        # WeCom lets no server message a customer: the member relays it.
        text = _("请转告客户 %(who)s：%(text)s") % {
            "who": notice.participant.customer,
            "text": text,
        }
    try:
        app_text_send(staff=notice.staff, text=text)
    except WeComError as exc:
        Notice.objects.filter(pk=notice_id).update(
            status=NoticeStatus.FAILED, error=f"{exc.errcode} {exc}"[:300]
        )
        return "failed"
    return "sent"
