import json

from siyu.audit.models import AuditEntry
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import Company


def test_permission_changes_are_audited_with_before_and_after(acme: Company, login) -> None:
    client = login.token(acme["admin"])
    response = client.put(
        f"/api/v1/org/staff/{acme['carol'].pk}/permissions",
        data=json.dumps({"role": "manager", "data_scope": "department"}),
        content_type="application/json",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 200
    with tenant_context(acme.tenant):
        entry = AuditEntry.objects.get(action="staff.permissions_changed")
    assert entry.actor_id == acme["admin"].pk
    assert entry.target_id == str(acme["carol"].pk)
    assert entry.details == {
        "before": {"role": "staff", "data_scope": ""},
        "after": {"role": "manager", "data_scope": "department"},
    }
    assert entry.ip_address == "203.0.113.9"


def test_admins_read_the_audit_log_and_staff_cannot(acme: Company, login) -> None:
    login.token(acme["admin"])  # creating a token is itself audited
    listing = login.token(acme["boss"]).get("/api/v1/audit?action=api_token.created").json()
    assert listing["count"] == 2
    assert {item["action"] for item in listing["items"]} == {"api_token.created"}
    assert login.token(acme["alice"]).get("/api/v1/audit").status_code == 403


def test_refused_changes_leave_no_audit_entry(acme: Company, login) -> None:
    client = login.token(acme["manager"])
    response = client.put(
        f"/api/v1/org/staff/{acme['alice'].pk}/permissions",
        data=json.dumps({"role": "admin"}),
        content_type="application/json",
    )
    assert response.status_code == 403
    with tenant_context(acme.tenant):
        assert not AuditEntry.objects.filter(action="staff.permissions_changed").exists()


def test_only_a_boss_may_appoint_a_boss_and_nobody_changes_themselves(acme: Company, login) -> None:
    admin = login.token(acme["admin"])
    body = json.dumps({"role": "boss"})
    url = f"/api/v1/org/staff/{acme['carol'].pk}/permissions"
    assert admin.put(url, data=body, content_type="application/json").status_code == 403
    self_url = f"/api/v1/org/staff/{acme['admin'].pk}/permissions"
    response = admin.put(
        self_url, data=json.dumps({"role": "staff"}), content_type="application/json"
    )
    assert response.status_code == 403
    boss = login.token(acme["boss"])
    assert boss.put(url, data=body, content_type="application/json").status_code == 200
