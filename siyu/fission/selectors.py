"""Reads of fission campaigns: lists, funnel numbers, the referral tree, a participant's progress.

Campaigns belong to the company, not to a member: managing them is one permission
(``FISSION_MANAGE``), checked here for every console and API read.
"""

from typing import Any

from django.db.models import Count, Q, QuerySet

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.core.errors import NotFound
from siyu.customers.models import Customer
from siyu.fission.models import Campaign, Invite, InviteStatus, Participant, RewardGrant
from siyu.groupchats.models import GroupChatMember


def campaign_list(*, actor: StaffMember) -> QuerySet[Campaign]:
    require(actor, Action.FISSION_MANAGE)
    return Campaign.objects.annotate(participant_count=Count("participants")).order_by(
        "-starts_at", "-pk"
    )


def campaign_get(*, actor: StaffMember, campaign_id: int) -> Campaign:
    require(actor, Action.FISSION_MANAGE)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound("campaign not found")
    return campaign


def campaign_funnel(*, campaign: Campaign) -> dict[str, int]:
    """Participants → adds through their codes → counted → rewarded, and why adds did not count."""
    by_status = dict(
        Invite.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    grants = RewardGrant.objects.filter(participant__campaign=campaign)
    return {
        "participants": Participant.objects.filter(campaign=campaign).count(),
        "adds": sum(by_status.values()),
        **{status: by_status.get(status, 0) for status in InviteStatus.values},
        "rewards": grants.filter(in_stock=True).count(),
        "rewards_out_of_stock": grants.filter(in_stock=False).count(),
        "completed": grants.values("participant").distinct().count(),
    }


def participant_list(*, campaign: Campaign) -> QuerySet[Participant]:
    return (
        Participant.objects.filter(campaign=campaign)
        .select_related("customer", "referrer__customer")
        .annotate(
            adds=Count("invites"),
            deleted=Count("invites", filter=Q(invites__status=InviteStatus.DELETED)),
        )
        .order_by("-counted", "pk")
    )


def referral_tree(*, campaign: Campaign) -> list[dict[str, Any]]:
    """Participants nested under whoever's code brought them in; roots are seed participants."""
    nodes: dict[int, dict[str, Any]] = {}
    parents: dict[int, int | None] = {}
    for participant in Participant.objects.filter(campaign=campaign).select_related("customer"):
        nodes[participant.pk] = {
            "id": participant.pk,
            "customer_id": participant.customer_id,
            "name": str(participant.customer),
            "counted": participant.counted,
            "children": [],
        }
        parents[participant.pk] = participant.referrer_id
    roots = []
    for pk in sorted(nodes):
        parent = parents[pk]
        if parent is not None and parent in nodes:
            nodes[parent]["children"].append(nodes[pk])
        else:
            roots.append(nodes[pk])
    return roots


def participant_for(*, campaign: Campaign, customer: Customer) -> Participant | None:
    return (
        Participant.objects.filter(campaign=campaign, customer=customer)
        .select_related("campaign")
        .first()
    )


def participant_progress(*, participant: Participant) -> dict[str, Any]:
    """What the H5 progress page shows: who was invited and whether they count, each tier and
    what is left to reach it."""
    counted = participant.counted
    granted = set(
        RewardGrant.objects.filter(participant=participant).values_list("tier_id", flat=True)
    )
    tiers = [
        {
            "threshold": tier.threshold,
            "reward": tier.payload,
            "kind": tier.get_kind_display(),
            "reached": tier.pk in granted,
            "left": max(tier.threshold - counted, 0),
            "stock": tier.stock,
        }
        for tier in participant.campaign.tiers.all()
    ]
    invites = [
        {
            "name": str(invite.invitee),
            "status": invite.status,
            "status_label": invite.get_status_display(),
            "at": invite.at,
        }
        for invite in Invite.objects.filter(participant=participant).select_related("invitee")
    ]
    return {"counted": counted, "tiers": tiers, "invites": invites}


def current_group(*, campaign: Campaign) -> dict[str, Any] | None:
    """群裂变: the first group of the list that still has room (members counted from the group
    chats Siyu knows), so groups fill one after another."""
    for group in campaign.group_chats:
        size = GroupChatMember.objects.filter(
            chat__chat_id=group["chat_id"], left_at__isnull=True
        ).count()
        if size < group["capacity"]:
            return {**group, "size": size}
    return None
