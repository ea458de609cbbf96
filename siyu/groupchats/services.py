"""Mirroring customer group chats from WeCom's groupchat/get and change_external_chat."""

from datetime import UTC, datetime
from typing import Any

from siyu.accounts.models import StaffMember
from siyu.core.services import event_record
from siyu.customers.events import CUSTOMER_JOINED_GROUP, CUSTOMER_LEFT_GROUP
from siyu.customers.services import customer_ensure
from siyu.groupchats.models import GroupChat, GroupChatMember, GroupChatStatus


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def group_chat_apply(
    detail: dict[str, Any], *, source: str, at: datetime, event_key: str | None = None
) -> GroupChat:
    """Make the chat and its members equal to WeCom's ``group_chat`` object; joins and leaves of
    customers become events (keyed by ``event_key`` so a replay records nothing twice)."""
    owner_userid = detail.get("owner", "")
    chat, _ = GroupChat.objects.update_or_create(
        chat_id=detail["chat_id"],
        defaults={
            "name": detail.get("name", ""),
            "owner_userid": owner_userid,
            "owner": StaffMember.objects.filter(userid=owner_userid).first(),
            "notice": detail.get("notice", ""),
            "status": GroupChatStatus.ACTIVE,
            "member_version": str(detail.get("member_version", "")),
            "created_at_wecom": _ts(detail.get("create_time")),
        },
    )
    members = {m["userid"]: m for m in detail.get("member_list", [])}
    existing = {m.member_id: m for m in GroupChatMember.objects.filter(chat=chat)}
    for member_id, m in members.items():
        row = existing.get(member_id)
        if row is not None and row.left_at is None:
            continue
        customer = (
            customer_ensure(external_userid=member_id, unionid=m.get("unionid", ""))
            if m.get("type") == 2
            else None
        )
        GroupChatMember.objects.update_or_create(
            chat=chat,
            member_id=member_id,
            defaults={
                "member_type": m.get("type", 2),
                "customer": customer,
                "join_time": _ts(m.get("join_time")),
                "join_scene": m.get("join_scene", 0),
                "left_at": None,
            },
        )
        if customer is not None:
            event_record(
                type=CUSTOMER_JOINED_GROUP,
                source=source,
                customer_id=customer.pk,
                occurred_at=at,
                idempotency_key=f"{event_key}:join:{member_id}" if event_key else None,
                payload={
                    "chat_id": chat.chat_id,
                    "chat_name": chat.name,
                    "join_scene": m.get("join_scene", 0),
                },
            )
    for member_id, row in existing.items():
        if member_id in members or row.left_at is not None:
            continue
        row.left_at = at
        row.save(update_fields=["left_at"])
        if row.customer_id is not None:
            event_record(
                type=CUSTOMER_LEFT_GROUP,
                source=source,
                customer_id=row.customer_id,
                occurred_at=at,
                idempotency_key=f"{event_key}:leave:{member_id}" if event_key else None,
                payload={"chat_id": chat.chat_id, "chat_name": chat.name},
            )
    return chat


def group_chat_dismissed(*, chat_id: str, at: datetime) -> None:
    GroupChat.objects.filter(chat_id=chat_id).update(status=GroupChatStatus.DISMISSED)
    GroupChatMember.objects.filter(chat__chat_id=chat_id, left_at__isnull=True).update(left_at=at)
