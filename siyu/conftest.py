"""Fixtures shared by every app's tests: the story companies and authenticated clients."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from django.test import Client

from siyu.accounts.models import StaffMember
from siyu.accounts.services import api_token_create
from siyu.core.tenancy import tenant_context
from siyu.testing.stories import PASSWORD, Company, build_acme, build_globex

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox


@pytest.fixture
def acme(db: None) -> Company:
    return build_acme()


@pytest.fixture
def globex(db: None) -> Company:
    return build_globex()


@pytest.fixture
def in_acme(acme: Company) -> Iterator[Company]:
    """Run the test body inside acme's tenant context, as a task or command would."""
    with tenant_context(acme.tenant):
        yield acme


@pytest.fixture
def login() -> "Login":
    return Login()


class Login:
    """Clients acting as a member: ``session(member)`` for the console, ``token(member)`` for the
    API (a real token created through the service, so the whole auth path runs)."""

    def session(self, member: StaffMember) -> Client:
        client = Client()
        assert member.user is not None
        assert client.login(username=member.user.username, password=PASSWORD)
        return client

    def token(self, member: StaffMember) -> Client:
        with tenant_context(member.tenant):
            admin = StaffMember.objects.filter(role="admin").first()
            assert admin is not None
            raw = api_token_create(actor=admin, name=f"test-{member.userid}", staff_id=member.pk)
        return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator["Sandbox"]:
    """A WeCom sandbox on a free loopback port, fast retries for callbacks.
    ``@pytest.mark.sandbox(callback_workers=N)`` sets how many callbacks are in flight at once."""
    from django.db import connection

    from siyu.sandbox.httpd import Sandbox

    marker = request.node.get_closest_marker("sandbox")
    workers = marker.kwargs.get("callback_workers", 2) if marker else 2
    if isinstance(workers, dict):  # per database vendor: {"sqlite": 1, "postgresql": 4}
        workers = workers.get(connection.vendor, 2)
    with Sandbox(callback_workers=workers, retry_delay=0.05) as running:
        yield running


SANDBOX_STAFF = ["boss", "admin", "ops", "manager", "alice", "bob", "carol"]


@pytest.fixture
def wecom_acme(acme: Company, sandbox: "Sandbox") -> Company:
    """acme connected to the sandbox: same corp id and secrets on both sides, the story's
    members in WeCom's address book, callbacks not yet wired (tests that need them set
    ``callback_url``)."""
    from siyu.sandbox.client import SandboxControl

    tenant = acme.tenant
    tenant.contact_secret = "acme-contact-secret"
    tenant.app_secret = "acme-app-secret"
    tenant.agent_id = "1000002"
    tenant.wecom_base_url = sandbox.api_base
    tenant.save()
    with SandboxControl(sandbox.base_url) as control:
        control.create_corp(
            tenant.corp_id,
            "acme-contact-secret",
            app_secret="acme-app-secret",
            agent_id="1000002",
            corp_name=tenant.name,
            callback_token=tenant.callback_token,
            callback_aes_key=tenant.callback_aes_key,
        )
        control.add_departments(
            tenant.corp_id,
            [
                {"id": 2, "name": "销售部", "parentid": 1},
                {"id": 3, "name": "华东组", "parentid": 2},
                {"id": 4, "name": "华南组", "parentid": 2},
                {"id": 5, "name": "市场部", "parentid": 1},
            ],
        )
        depts = {"boss": 1, "admin": 1, "ops": 5, "manager": 2, "alice": 3, "bob": 4, "carol": 5}
        control.add_staff(
            tenant.corp_id,
            [
                {"userid": u, "name": acme[u].name, "department": [d], "main_department": d}
                for u, d in depts.items()
            ],
        )
    return acme
