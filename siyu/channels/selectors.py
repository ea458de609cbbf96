"""Reads for channel codes: the list with today's and all-time adds, one code, the quota."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require
from siyu.channels.models import ChannelCode, ChannelMember, WelcomeDefault
from siyu.channels.services import contact_way_quota, used_contact_ways
from siyu.core.errors import NotFound
from siyu.groupchats.models import GroupChat, GroupChatStatus


def _today_start() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def channel_code_list(*, actor: StaffMember, query: str = "") -> QuerySet[ChannelCode]:
    require(actor, Action.CHANNELS_MANAGE)
    codes = (
        ChannelCode.objects.annotate(
            adds_today=Count("adds", filter=Q(adds__added_at__gte=_today_start()))
        )
        .prefetch_related(
            "tags",
            Prefetch(
                "members",
                queryset=ChannelMember.objects.select_related("staff").order_by("backup", "pk"),
            ),
        )
        .order_by("-pk")
    )
    if query:
        codes = codes.filter(name__icontains=query)
    return codes


def channel_code_get(*, actor: StaffMember, code_id: int) -> ChannelCode:
    code = channel_code_list(actor=actor).filter(pk=code_id).first()
    if code is None:
        raise NotFound("channel code not found")
    return code


@dataclass(frozen=True)
class Quota:
    used: int
    quota: int

    @property
    def left(self) -> int:
        return max(self.quota - self.used, 0)


def contact_way_usage(*, actor: StaffMember) -> Quota:
    """Contact ways Siyu's codes hold against WeCom's per-corp quota."""
    require(actor, Action.CHANNELS_MANAGE)
    return Quota(used=used_contact_ways(), quota=contact_way_quota())


def welcome_default_get(*, actor: StaffMember) -> dict[str, Any]:
    require(actor, Action.CHANNELS_MANAGE)
    row = WelcomeDefault.objects.first()
    return dict(row.welcome) if row is not None else {}


def group_choices(*, actor: StaffMember) -> QuerySet[GroupChat]:
    """Active group chats customers can be invited into."""
    require(actor, Action.CHANNELS_MANAGE)
    return GroupChat.objects.filter(status=GroupChatStatus.ACTIVE).order_by("name", "pk")


def pool_candidates(*, actor: StaffMember) -> QuerySet[StaffMember]:
    """Members who can receive customers through a code."""
    require(actor, Action.CHANNELS_MANAGE)
    return StaffMember.objects.filter(
        status=StaffStatus.ACTIVE, customer_contact_enabled=True
    ).order_by("name", "pk")
