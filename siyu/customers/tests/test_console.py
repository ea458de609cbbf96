"""The console's customer pages: the list, the 360 page and its forms."""

from django.urls import reverse

from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.customers.tests.test_api import alice_customer
from siyu.tags.models import CustomerTag, Tag, TagGroup


def test_the_360_page_shows_the_customer_and_tags_them(acme, login) -> None:
    customer = alice_customer(acme)
    with tenant_context(acme.tenant):
        group = TagGroup.objects.create(name="意向", wecom_id="etg-1")
        hot = Tag.objects.create(group=group, name="高意向", wecom_id="et-1")
    client = login.session(acme["alice"])
    page = client.get(reverse("console:customer", args=[customer.pk]))
    assert page.status_code == 200
    assert "wm-api" in page.content.decode()
    response = client.post(reverse("console:customer_tags", args=[customer.pk]), {"add": hot.pk})
    assert response.status_code == 302
    with tenant_context(acme.tenant):
        applied = CustomerTag.objects.get(customer=customer, tag=hot)
        assert (applied.source, applied.staff_id) == ("manual", acme["alice"].pk)
    client.post(reverse("console:customer_tags", args=[customer.pk]), {"remove": hot.pk})
    with tenant_context(acme.tenant):
        assert not CustomerTag.objects.filter(customer=customer).exists()


def test_the_stage_form_moves_the_customer_and_bad_stages_change_nothing(acme, login) -> None:
    customer = alice_customer(acme)
    client = login.session(acme["alice"])
    url = reverse("console:customer_update", args=[customer.pk])
    client.post(url, {"stage": "nope"})
    with tenant_context(acme.tenant):
        assert Customer.objects.get(pk=customer.pk).stage == "normal"
    client.post(url, {"stage": "intent", "reason": "问了价格"})
    with tenant_context(acme.tenant):
        assert Customer.objects.get(pk=customer.pk).stage == "intent"


def test_the_workspace_lists_my_customers_only(acme, login) -> None:
    mine = alice_customer(acme)
    with tenant_context(acme.tenant):
        from datetime import UTC, datetime

        from siyu.customers.services import relation_added

        relation_added(
            staff=acme["bob"],
            external_userid="wm-bob",
            at=datetime(2026, 1, 1, tzinfo=UTC),
            source="wecom",
        )
    page = login.session(acme["alice"]).get(reverse("console:workspace")).content.decode()
    assert reverse("console:customer", args=[mine.pk]) in page
    assert page.count("?m=1") == 1
