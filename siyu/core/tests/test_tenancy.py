import pytest

from siyu.accounts.models import StaffMember
from siyu.core.tenancy import TenantNotSet, tenant_context
from siyu.testing.stories import Company


def test_scoped_manager_refuses_to_query_without_a_tenant(acme: Company) -> None:
    with pytest.raises(TenantNotSet):
        list(StaffMember.objects.all())


def test_scoped_manager_returns_only_the_tenant_in_context(acme: Company, globex: Company) -> None:
    with tenant_context(acme.tenant):
        acme_ids = set(StaffMember.objects.values_list("userid", flat=True))
    with tenant_context(globex.tenant):
        globex_ids = set(StaffMember.objects.values_list("userid", flat=True))
    assert acme_ids == {"boss", "admin", "ops", "manager", "alice", "bob", "carol"}
    assert globex_ids == {"boss", "admin", "dave"}


def test_a_row_of_another_tenant_cannot_be_saved_from_this_tenant(
    acme: Company, globex: Company
) -> None:
    dave = globex["dave"]
    dave.name = "hijacked"
    with tenant_context(acme.tenant), pytest.raises(PermissionError):
        dave.save()
    dave.refresh_from_db()
    assert dave.name == "Dave"


def test_same_userid_in_two_tenants_are_two_members(acme: Company, globex: Company) -> None:
    assert acme["boss"].pk != globex["boss"].pk
    assert StaffMember.unscoped.filter(userid="boss").count() == 2


def test_tenant_secrets_are_encrypted_at_rest(acme: Company) -> None:
    from django.db import connection

    tenant = acme.tenant
    tenant.contact_secret = "plain-contact-secret"
    tenant.save()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT contact_secret, callback_aes_key FROM core_tenant WHERE id = %s", [tenant.pk]
        )
        stored_secret, stored_key = cursor.fetchone()
    assert "plain-contact-secret" not in stored_secret
    assert stored_secret.startswith("enc1:")
    tenant.refresh_from_db()
    assert tenant.contact_secret == "plain-contact-secret"
    assert len(tenant.callback_aes_key) == 43
    assert tenant.callback_aes_key not in stored_key
