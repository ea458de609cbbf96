"""Tagging quality: compliance per member, the mass-send size hint, and the console pages."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.urls import reverse

from siyu.customers.models import RelationStatus, StaffRelation
from siyu.customers.services import relation_added
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _customers(company: Company, userid: str, count: int) -> list[Any]:
    out = []
    for i in range(count):
        relation = relation_added(
            staff=company[userid], external_userid=f"wm-{userid}-{i}", at=T0, source="wecom"
        )
        assert relation is not None
        out.append(relation.customer)
    return out


@pytest.fixture
def taxonomy(in_acme: Company) -> dict[str, Any]:
    stage = TagGroup.objects.create(name="付费阶段", wecom_id="g1", required=True, order=2)
    persona = TagGroup.objects.create(name="画像", wecom_id="g2", required=True, order=1)
    batch = TagGroup.objects.create(name="批次", wecom_id="g3", mass_send=True)
    return {
        "stage": stage,
        "persona": persona,
        "paid": Tag.objects.create(group=stage, name="付费", wecom_id="t1"),
        "owner": Tag.objects.create(group=persona, name="企业主", wecom_id="t2"),
        "first": Tag.objects.create(group=batch, name="创始会员", wecom_id="t3"),
        "second": Tag.objects.create(group=batch, name="第二批", wecom_id="t4"),
    }


def _tag(customer: Any, tag: Tag, staff: Any = None) -> None:
    CustomerTag.objects.create(customer=customer, tag=tag, staff=staff, source="manual")


def test_compliance_counts_customers_missing_each_required_group(
    in_acme: Company, taxonomy: dict[str, Any], login
) -> None:
    alices = _customers(in_acme, "alice", 4)
    bobs = _customers(in_acme, "bob", 2)
    for customer in alices[:3]:
        _tag(customer, taxonomy["paid"], in_acme["alice"])
    _tag(alices[0], taxonomy["owner"])  # tagged by anyone counts: tags are the team's
    _tag(alices[1], taxonomy["owner"], in_acme["bob"])
    _tag(bobs[0], taxonomy["first"])  # not a required group
    StaffRelation.objects.filter(customer=alices[3]).update(status=RelationStatus.CUSTOMER_DELETED)

    report = login.token(in_acme["boss"]).get("/api/v1/tags/quality").json()
    assert [g["name"] for g in report["required_groups"]] == ["付费阶段", "画像"]
    rows = {row["userid"]: row for row in report["members"]}
    stage, persona = taxonomy["stage"].pk, taxonomy["persona"].pk
    assert rows["alice"]["customers"] == 3
    assert rows["alice"]["compliant"] == 2
    assert rows["alice"]["share"] == pytest.approx(0.6667)
    assert {m["group_id"]: m["customers"] for m in rows["alice"]["missing"]} == {
        stage: 0,
        persona: 1,
    }
    assert (rows["bob"]["customers"], rows["bob"]["compliant"], rows["bob"]["share"]) == (2, 0, 0)
    assert {m["group_id"]: m["customers"] for m in rows["bob"]["missing"]} == {
        stage: 2,
        persona: 2,
    }
    assert (rows["carol"]["customers"], rows["carol"]["share"]) == (0, None)


def test_a_manager_sees_only_their_department(
    in_acme: Company, taxonomy: dict[str, Any], login
) -> None:
    report = login.token(in_acme["manager"]).get("/api/v1/tags/quality").json()
    assert {row["userid"] for row in report["members"]} == {"manager", "alice", "bob"}
    assert login.token(in_acme["alice"]).get("/api/v1/tags/quality").status_code == 403


def test_a_mass_send_tag_over_200_customers_gets_a_hint(
    in_acme: Company, taxonomy: dict[str, Any], login
) -> None:
    customers = _customers(in_acme, "alice", 201)
    for customer in customers[:200]:
        _tag(customer, taxonomy["first"])
    _tag(customers[0], taxonomy["second"])
    for customer in customers:
        _tag(customer, taxonomy["paid"])  # big, but not meant for mass sends

    def groups() -> dict[str, Any]:
        response = login.token(in_acme["ops"]).get("/api/v1/tags/groups")
        return {g["name"]: g for g in response.json()}

    at_200 = groups()
    assert at_200["批次"]["hint"] is None
    assert [t["customer_count"] for t in at_200["批次"]["tags"]] == [200, 1]
    assert at_200["付费阶段"]["tags"][0]["oversized"] is False

    _tag(customers[200], taxonomy["first"])
    over = groups()["批次"]
    assert [(t["name"], t["oversized"]) for t in over["tags"]] == [
        ("创始会员", True),
        ("第二批", False),
    ]
    assert "创始会员（201）" in over["hint"]
    page = login.session(in_acme["ops"]).get(reverse("console:tags")).content.decode()
    assert "创始会员（201）" in page


def test_console_pages_render_and_refuse_bad_posts(
    in_acme: Company, taxonomy: dict[str, Any], login
) -> None:
    ops = login.session(in_acme["ops"])
    assert "付费阶段" in ops.get(reverse("console:tags")).content.decode()
    assert "企业主" in ops.get(reverse("console:tag_rules")).content.decode()
    quality = ops.get(reverse("console:tag_quality")).content.decode()
    assert "Alice" in quality and "缺「画像」" in quality
    # A name WeCom would refuse: a message, and nothing changed (WeCom was never asked).
    response = ops.post(
        reverse("console:tags"),
        {"op": "update_group", "group_id": taxonomy["stage"].pk, "name": "长" * 31, "order": "2"},
        follow=True,
    )
    assert "1–30" in response.content.decode()
    assert TagGroup.objects.get(pk=taxonomy["stage"].pk).name == "付费阶段"
    created = ops.post(
        reverse("console:tag_rules"),
        {
            "op": "create",
            "name": "入群",
            "event_type": "customer.joined_group",
            "tag_id": taxonomy["owner"].pk,
            "threshold": "1",
            "window_days": "7",
            "conditions": "chat=vip\nround=2",
        },
        follow=True,
    )
    assert "已保存" in created.content.decode()
    rule = taxonomy["owner"].rules.get()
    assert rule.conditions == {"chat": "vip", "round": 2}
    assert rule.created_by == in_acme["ops"]
