"""What each WeCom callback means for Siyu's state.

A handler has an optional ``prepare`` step that calls WeCom (outside any transaction: the
callback carries ids, not details) and an ``apply`` step that changes Siyu's rows and records
customer events inside the inbox item's transaction. ``apply`` is idempotent: events carry the
inbox item's dedupe key, and relations ignore changes older than the last one applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from siyu.accounts.models import Department, StaffMember, StaffStatus
from siyu.accounts.services import department_upsert, staff_upsert
from siyu.customers import services as customers
from siyu.groupchats import services as groupchats
from siyu.tags import services as tags
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import InvalidExternalUser, NotExternalContact

SOURCE = "wecom"


@dataclass(frozen=True)
class Inbound:
    """One callback as the handlers see it."""

    key: str  # dedupe key of the inbox item; events derive their idempotency keys from it
    data: dict[str, Any]
    at: datetime  # WeCom's CreateTime

    def field(self, name: str) -> str:
        value = self.data.get(name, "")
        return "" if value is None else str(value)


Prepare = Callable[[WeComClient, Inbound], Any]
Apply = Callable[[Inbound, Any], None]


@dataclass(frozen=True)
class Handler:
    apply: Apply
    prepare: Prepare | None = None


def _staff(userid: str) -> StaffMember:
    """The member a callback names; created on the fly if the address-book event was lost."""
    member = StaffMember.objects.filter(userid=userid).first()
    if member is None:
        member = staff_upsert(userid=userid, name=userid)
    return member


def _enrich_later(external_userid: str) -> None:
    from siyu.core.tenancy import get_current_tenant
    from siyu.wecom.tasks import enrich_customer

    tenant_id = get_current_tenant().pk
    transaction.on_commit(lambda: enrich_customer.delay(tenant_id, external_userid))


# --- change_external_contact -------------------------------------------------------------


def _add(half: bool) -> Apply:
    def apply(msg: Inbound, _: Any) -> None:
        relation = customers.relation_added(
            staff=_staff(msg.field("UserID")),
            external_userid=msg.field("ExternalUserID"),
            at=msg.at,
            source=SOURCE,
            state=msg.field("State"),
            half=half,
            welcome_code=msg.field("WelcomeCode"),
            idempotency_key=f"cb:{msg.key}",
        )
        if relation is not None:
            # The welcome lane must not wait for profile details: fetch them afterwards.
            _enrich_later(msg.field("ExternalUserID"))

    return apply


def _delete(by: str) -> Apply:
    def apply(msg: Inbound, _: Any) -> None:
        customers.relation_deleted(
            staff=_staff(msg.field("UserID")),
            external_userid=msg.field("ExternalUserID"),
            at=msg.at,
            by=by,
            source=SOURCE,
            delete_source=msg.field("Source"),
            idempotency_key=f"cb:{msg.key}",
        )

    return apply


def _fetch_contact(client: WeComClient, msg: Inbound) -> dict[str, Any] | None:
    try:
        return client.external_contact(msg.field("ExternalUserID"))
    except (NotExternalContact, InvalidExternalUser):
        return None  # gone since; the delete callback (or reconciliation) will say so


def _edit(msg: Inbound, contact: dict[str, Any] | None) -> None:
    if contact is None:
        return
    apply_contact(contact, only_userid=msg.field("UserID"), at=msg.at, key=f"cb:{msg.key}")


def apply_contact(
    contact: dict[str, Any], *, at: datetime, key: str | None, only_userid: str = ""
) -> None:
    """Apply externalcontact/get's answer: profile, unionid, and per-member remark and tags."""
    ext = contact.get("external_contact", {})
    external_userid = ext.get("external_userid", "")
    customer = customers.customer_ensure(
        external_userid=external_userid, unionid=ext.get("unionid", ""), profile=ext
    )
    for follow in contact.get("follow_user", []):
        if only_userid and follow.get("userid") != only_userid:
            continue
        staff = StaffMember.objects.filter(userid=follow.get("userid", "")).first()
        if staff is None:
            continue
        customers.relation_refresh(
            staff=staff,
            external_userid=external_userid,
            follow=follow,
            source=SOURCE,
            at=at,
            idempotency_key=f"{key}:edit:{staff.userid}" if key else None,
        )
        tag_ids = [
            t["tag_id"] for t in follow.get("tags", []) if t.get("type") == 1 and t.get("tag_id")
        ]
        tag_ids += list(follow.get("tag_id", []))
        tags.customer_tags_set_from_wecom(
            customer=customer,
            staff=staff,
            wecom_tag_ids=tag_ids,
            source=SOURCE,
            idempotency_key=f"{key}:tags:{staff.userid}" if key else None,
        )


def _transfer_fail(msg: Inbound, _: Any) -> None:
    customers.relation_transfer_failed(
        staff=_staff(msg.field("UserID")),
        external_userid=msg.field("ExternalUserID"),
        reason=msg.field("FailReason"),
        at=msg.at,
        source=SOURCE,
        idempotency_key=f"cb:{msg.key}",
    )


# --- change_external_chat ----------------------------------------------------------------


def _fetch_chat(client: WeComClient, msg: Inbound) -> dict[str, Any] | None:
    try:
        return client.group_chat(msg.field("ChatId"))
    except NotExternalContact:
        return None


def _chat_changed(msg: Inbound, detail: dict[str, Any] | None) -> None:
    if detail is None:
        return
    groupchats.group_chat_apply(detail, source=SOURCE, at=msg.at, event_key=f"cb:{msg.key}")


def _chat_dismissed(msg: Inbound, _: Any) -> None:
    groupchats.group_chat_dismissed(chat_id=msg.field("ChatId"), at=msg.at)


# --- change_external_tag -----------------------------------------------------------------


def _fetch_tags(client: WeComClient, msg: Inbound) -> list[dict[str, Any]]:
    if msg.field("ChangeType") == "shuffle" or not msg.field("Id"):
        return client.corp_tag_list()
    if msg.field("TagType") == "tag_group":
        return client.corp_tag_list(group_ids=[msg.field("Id")])
    return client.corp_tag_list(tag_ids=[msg.field("Id")])


def _tags_changed(msg: Inbound, groups: list[dict[str, Any]]) -> None:
    complete = msg.field("ChangeType") == "shuffle" and not msg.field("Id")
    tags.tag_groups_upsert_from_wecom(groups, complete=complete)


def _tags_deleted(msg: Inbound, _: Any) -> None:
    if msg.field("TagType") == "tag_group":
        tags.tags_delete_by_wecom_id(group_ids=[msg.field("Id")])
    else:
        tags.tags_delete_by_wecom_id(tag_ids=[msg.field("Id")])


# --- change_contact (address book) -------------------------------------------------------

_STATUS = {
    "1": StaffStatus.ACTIVE,
    "2": StaffStatus.DISABLED,
    "4": StaffStatus.INACTIVE,
    "5": StaffStatus.LEFT,
}


def _user_changed(msg: Inbound, _: Any) -> None:
    userid = msg.field("UserID")
    new_userid = msg.field("NewUserID")
    if new_userid and new_userid != userid:
        StaffMember.objects.filter(userid=userid).update(userid=new_userid)
        userid = new_userid
    existing = StaffMember.objects.filter(userid=userid).first()
    fields: dict[str, Any] = {}
    for xml_name, field in (
        ("Position", "position"),
        ("Mobile", "mobile"),
        ("Email", "email"),
        ("Avatar", "avatar"),
    ):
        if xml_name in msg.data:
            fields[field] = msg.field(xml_name)
    if msg.field("Status") in _STATUS:
        fields["status"] = _STATUS[msg.field("Status")]
    departments = (
        [int(d) for d in msg.field("Department").split(",") if d.strip().isdigit()]
        if "Department" in msg.data
        else None
    )
    main = msg.field("MainDepartment")
    staff_upsert(
        userid=userid,
        name=msg.field("Name") or (existing.name if existing else userid),
        department_wecom_ids=departments,
        main_department_wecom_id=int(main) if main.isdigit() else None,
        **fields,
    )


def _user_deleted(msg: Inbound, _: Any) -> None:
    StaffMember.objects.filter(userid=msg.field("UserID")).update(
        status=StaffStatus.LEFT, left_at=msg.at
    )


def _party_changed(msg: Inbound, _: Any) -> None:
    dept_id = int(msg.field("Id"))
    existing = Department.objects.filter(wecom_id=dept_id).first()
    parent = msg.field("ParentId")
    department_upsert(
        wecom_id=dept_id,
        name=msg.field("Name") or (existing.name if existing else str(dept_id)),
        parent_wecom_id=int(parent)
        if parent.isdigit()
        else (existing.parent.wecom_id if existing and existing.parent else None),
        order=int(msg.field("Order"))
        if msg.field("Order").isdigit()
        else (existing.order if existing else 0),
    )


def _party_deleted(msg: Inbound, _: Any) -> None:
    Department.objects.filter(wecom_id=int(msg.field("Id"))).delete()


HANDLERS: dict[tuple[str, str], Handler] = {
    ("change_external_contact", "add_external_contact"): Handler(_add(half=False)),
    ("change_external_contact", "add_half_external_contact"): Handler(_add(half=True)),
    ("change_external_contact", "del_external_contact"): Handler(_delete(by="staff")),
    ("change_external_contact", "del_follow_user"): Handler(_delete(by="customer")),
    ("change_external_contact", "edit_external_contact"): Handler(_edit, _fetch_contact),
    ("change_external_contact", "transfer_fail"): Handler(_transfer_fail),
    ("change_external_chat", "create"): Handler(_chat_changed, _fetch_chat),
    ("change_external_chat", "update"): Handler(_chat_changed, _fetch_chat),
    ("change_external_chat", "dismiss"): Handler(_chat_dismissed),
    ("change_external_tag", "create"): Handler(_tags_changed, _fetch_tags),
    ("change_external_tag", "update"): Handler(_tags_changed, _fetch_tags),
    ("change_external_tag", "shuffle"): Handler(_tags_changed, _fetch_tags),
    ("change_external_tag", "delete"): Handler(_tags_deleted),
    ("change_contact", "create_user"): Handler(_user_changed),
    ("change_contact", "update_user"): Handler(_user_changed),
    ("change_contact", "delete_user"): Handler(_user_deleted),
    ("change_contact", "create_party"): Handler(_party_changed),
    ("change_contact", "update_party"): Handler(_party_changed),
    ("change_contact", "delete_party"): Handler(_party_deleted),
}


def handler_for(event: str, change_type: str) -> Handler | None:
    return HANDLERS.get((event, change_type))
