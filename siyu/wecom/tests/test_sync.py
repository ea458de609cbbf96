"""Full sync and reconciliation against the sandbox: WeCom's lists are the truth."""

from siyu.accounts.models import Department, StaffMember, StaffStatus
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.groupchats.models import GroupChat, GroupChatMember
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company
from siyu.wecom.sync.services import reconcile


def wecom_relations(sandbox: Sandbox, corpid: str) -> set[tuple[str, str]]:
    """(userid, external_userid) for every contact WeCom lists for a member."""
    corp = sandbox.world.corps[corpid]
    return {(f.userid, f.external_userid) for f in corp.follows.values() if not f.half}


def siyu_relations(company: Company) -> set[tuple[str, str]]:
    with tenant_context(company.tenant):
        rows = StaffRelation.objects.filter(
            status__in=[RelationStatus.ACTIVE, RelationStatus.CUSTOMER_DELETED]
        )
        return {(r.staff.userid, r.external_userid) for r in rows.select_related("staff")}


def test_reconciliation_heals_everything_callbacks_never_told(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    # WeCom's state changes while no callback reaches Siyu (no callback URL configured).
    tag = control.simulate(corp, "admin_create_tag", group_name="客户等级", name="VIP")
    adds = control.batch(
        corp,
        [("add", {"userid": "alice"}) for _ in range(5)]
        + [("add", {"userid": "bob"}) for _ in range(3)],
    )
    exts = [a["result"]["external_userid"] for a in adds]
    control.simulate(
        corp,
        "edit",
        userid="alice",
        external_userid=exts[0],
        remark="老客户",
        add_tags=[tag["tag_id"]],
    )
    control.simulate(corp, "staff_delete", userid="bob", external_userid=exts[7])
    chat = control.simulate(corp, "create_group", owner="alice", name="VIP 群", members=exts[:2])
    control.simulate(corp, "create_user", userid="dan", name="Dan", department=[3])
    control.simulate(corp, "create_party", id=9, name="直播组", parentid=2)

    run = reconcile(wecom_acme.tenant)
    assert run.status == "done", run.error
    assert run.healed["relations_added"] == 7
    assert run.healed["staff_added"] == 1
    assert run.healed["departments_added"] == 1
    assert run.healed["group_chats_added"] == 1
    assert siyu_relations(wecom_acme) == wecom_relations(sandbox, corp)
    with tenant_context(wecom_acme.tenant):
        first = StaffRelation.objects.get(staff__userid="alice", external_userid=exts[0])
        assert first.remark == "老客户"
        assert list(
            CustomerTag.objects.filter(customer=first.customer).values_list("tag__name", flat=True)
        ) == ["VIP"]
        assert Customer.objects.get(pk=first.customer_id).name.startswith("微信用户")
        assert StaffMember.objects.get(userid="dan").departments.get().wecom_id == 3
        assert Department.objects.get(wecom_id=9).parent.wecom_id == 2  # type: ignore[union-attr]
        assert TagGroup.objects.get().name == "客户等级"
        group = GroupChat.objects.get(chat_id=chat["chat_id"])
        assert GroupChatMember.objects.filter(chat=group).count() == 3
        added_events = Event.objects.filter(type="customer.added").count()

    again = reconcile(wecom_acme.tenant)
    assert again.status == "done"
    assert again.healed == {}  # nothing left to heal
    with tenant_context(wecom_acme.tenant):
        assert Event.objects.filter(type="customer.added").count() == added_events


def test_reconciliation_removes_what_wecom_no_longer_has(
    wecom_acme: Company, sandbox: Sandbox
) -> None:
    corp = wecom_acme.tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    ext = control.simulate(corp, "add", userid="alice")["external_userid"]
    tag = control.simulate(corp, "admin_create_tag", group_name="来源", name="抖音")
    reconcile(wecom_acme.tenant)
    control.simulate(corp, "staff_delete", userid="alice", external_userid=ext)
    control.simulate(corp, "admin_delete_tag", tag_id=tag["tag_id"])
    control.simulate(corp, "delete_user", userid="carol")
    run = reconcile(wecom_acme.tenant)
    assert run.healed["relations_deleted"] == 1
    assert run.healed["staff_left"] == 1
    with tenant_context(wecom_acme.tenant):
        relation = StaffRelation.objects.get(external_userid=ext)
        assert (relation.status, relation.delete_source) == (
            RelationStatus.STAFF_DELETED,
            "reconcile",
        )
        assert not Tag.objects.exists()
        assert StaffMember.objects.get(userid="carol").status == StaffStatus.LEFT
        assert (
            Event.objects.filter(
                type="customer.deleted_by_staff", customer_id=relation.customer_id
            ).count()
            == 1
        )


def test_a_failed_reconciliation_is_recorded(wecom_acme: Company, sandbox: Sandbox) -> None:
    tenant = wecom_acme.tenant
    tenant.contact_secret = "revoked"
    tenant.save()
    run = reconcile(tenant)
    assert run.status == "failed"
    assert "40001" in run.error
