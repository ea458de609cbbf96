"""One customer ID: identities link by proof and by hand; merges and splits keep a history and
can be undone exactly."""

from datetime import UTC, datetime

import pytest

from siyu.core.errors import Conflict, InvalidInput
from siyu.core.models import Event
from siyu.customers.merging import (
    customer_merge,
    customer_split,
    identities_prove_same,
    identity_link_manual,
    merge_undo,
)
from siyu.customers.models import Customer, CustomerIdentity, CustomerMerge, StaffRelation
from siyu.customers.services import customer_ensure, relation_added
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def add(company: Company, userid: str, ext: str) -> Customer:
    relation = relation_added(
        staff=company[userid], external_userid=ext, at=AT, source="wecom", state="ch:1"
    )
    assert relation is not None
    return relation.customer


def identities(customer: Customer) -> set[tuple[str, str]]:
    return set(CustomerIdentity.objects.filter(customer=customer).values_list("kind", "value"))


def test_a_unionid_from_wecom_merges_a_known_h5_visitor(in_acme: Company) -> None:
    visitor = identities_prove_same([("openid", "o-1"), ("unionid", "u-1")], source="h5")
    customer = customer_ensure(external_userid="wm-1", unionid="u-1")
    assert customer.pk == visitor.pk
    assert identities(customer) == {
        ("openid", "o-1"),
        ("unionid", "u-1"),
        ("external_userid", "wm-1"),
    }


def test_a_later_oauth_visit_merges_two_records_of_one_person(in_acme: Company) -> None:
    by_wecom = add(in_acme, "alice", "wm-2")
    by_h5 = identities_prove_same([("openid", "o-2")], source="h5")
    assert by_wecom.pk != by_h5.pk
    # The visitor authorises with unionid: WeCom gave us that unionid for wm-2 meanwhile.
    CustomerIdentity.objects.create(customer=by_wecom, kind="unionid", value="u-2")
    same = identities_prove_same([("openid", "o-2"), ("unionid", "u-2")], source="h5")
    assert same.pk == min(by_wecom.pk, by_h5.pk)
    absorbed = Customer.objects.get(pk=max(by_wecom.pk, by_h5.pk))
    assert absorbed.merged_into_id == same.pk
    assert CustomerMerge.objects.get(absorbed=absorbed).reason == "proven"


def test_two_unionids_are_never_merged_automatically(in_acme: Company) -> None:
    a = identities_prove_same([("unionid", "u-a")], source="h5")
    b = identities_prove_same([("unionid", "u-b"), ("phone", "13800000001")], source="h5")
    with pytest.raises(Conflict, match="different WeChat accounts"):
        customer_merge(survivor_id=a.pk, absorbed_id=b.pk, source="api")
    assert Customer.objects.get(pk=b.pk).merged_into_id is None


def test_merge_moves_everything_and_undo_puts_exactly_it_back(in_acme: Company) -> None:
    survivor = add(in_acme, "alice", "wm-s")
    absorbed = add(in_acme, "bob", "wm-a")
    group = TagGroup.objects.create(name="意向")
    hot = Tag.objects.create(group=group, name="高意向")
    CustomerTag.objects.create(customer=absorbed, tag=hot, staff=in_acme["bob"], source="manual")
    before = identities(absorbed)

    merge = customer_merge(
        survivor_id=survivor.pk, absorbed_id=absorbed.pk, source="api", by=in_acme["admin"]
    )
    assert identities(survivor) >= before
    assert StaffRelation.objects.filter(customer=survivor).count() == 2
    assert CustomerTag.objects.get(tag=hot).customer_id == survivor.pk
    assert Customer.objects.get(pk=absorbed.pk).merged_into_id == survivor.pk
    assert Event.objects.filter(type="customer.merged", customer_id=survivor.pk).exists()

    merge_undo(merge_id=merge.pk, source="api", by=in_acme["admin"])
    assert identities(absorbed) == before
    assert StaffRelation.objects.filter(customer=absorbed).count() == 1
    assert CustomerTag.objects.get(tag=hot).customer_id == absorbed.pk
    assert Customer.objects.get(pk=absorbed.pk).merged_into_id is None
    with pytest.raises(Conflict, match="undone already"):
        merge_undo(merge_id=merge.pk, source="api")


def test_circular_and_chained_merges_are_refused(in_acme: Company) -> None:
    a, b, c = (add(in_acme, "alice", f"wm-c{i}") for i in range(3))
    customer_merge(survivor_id=a.pk, absorbed_id=b.pk, source="api")
    with pytest.raises(Conflict, match="merged into"):
        customer_merge(survivor_id=b.pk, absorbed_id=a.pk, source="api")  # the cycle
    with pytest.raises(Conflict, match="merged into"):
        customer_merge(survivor_id=c.pk, absorbed_id=b.pk, source="api")  # merged already
    with pytest.raises(InvalidInput, match="itself"):
        customer_merge(survivor_id=a.pk, absorbed_id=a.pk, source="api")


def test_undo_waits_for_a_later_merge_of_the_survivor(in_acme: Company) -> None:
    a, b, c = (add(in_acme, "alice", f"wm-l{i}") for i in range(3))
    first = customer_merge(survivor_id=b.pk, absorbed_id=c.pk, source="api")
    second = customer_merge(survivor_id=a.pk, absorbed_id=b.pk, source="api")
    with pytest.raises(Conflict, match="undo that merge first"):
        merge_undo(merge_id=first.pk, source="api")
    merge_undo(merge_id=second.pk, source="api")
    merge_undo(merge_id=first.pk, source="api")
    assert identities(c) == {("external_userid", "wm-l2")}


def test_split_moves_an_external_userid_with_its_relation(in_acme: Company) -> None:
    person = add(in_acme, "alice", "wm-p1")
    other = add(in_acme, "bob", "wm-p2")
    customer_merge(survivor_id=person.pk, absorbed_id=other.pk, source="api")
    moving = CustomerIdentity.objects.get(value="wm-p2")
    twin = customer_split(customer_id=person.pk, identity_ids=[moving.pk], source="api")
    assert identities(twin) == {("external_userid", "wm-p2")}
    assert StaffRelation.objects.get(external_userid="wm-p2").customer_id == twin.pk
    assert Event.objects.filter(type="customer.split", customer_id=twin.pk).exists()
    only = CustomerIdentity.objects.get(value="wm-p1")
    with pytest.raises(InvalidInput, match="at least one identity"):
        customer_split(customer_id=person.pk, identity_ids=[only.pk], source="api")


def test_a_manual_phone_naming_someone_else_is_a_conflict(in_acme: Company) -> None:
    a = add(in_acme, "alice", "wm-m1")
    b = add(in_acme, "alice", "wm-m2")
    identity_link_manual(customer=a, kind="phone", value="+86 138-0013-8000", by=in_acme["ops"])
    assert ("phone", "13800138000") in identities(a)
    with pytest.raises(Conflict, match="merge the two instead"):
        identity_link_manual(customer=b, kind="phone", value="13800138000", by=in_acme["ops"])
    with pytest.raises(InvalidInput, match="mainland mobile"):
        identity_link_manual(customer=b, kind="phone", value="12345", by=in_acme["ops"])
    assert ("phone", "13800138000") not in identities(b)
