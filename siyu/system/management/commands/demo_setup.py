"""``siyu demo_setup``: a demo company with one login per role (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from siyu.accounts.models import Role
from siyu.accounts.services import department_upsert, staff_grant_login, staff_upsert
from siyu.core.models import Tenant
from siyu.core.services import tenant_create
from siyu.core.tenancy import tenant_context

DEMO_PASSWORD = "siyu-demo"  # noqa: S105 (listed in the README and on the demo sign-in page)
DEMO_DEPARTMENTS = [
    (1, "示例科技", None),
    (2, "销售部", 1),
    (3, "华东销售组", 2),
    (4, "华南销售组", 2),
    (5, "市场运营部", 1),
]
DEMO_LOGINS = [
    ("boss", "王总", Role.BOSS, 1),
    ("admin", "李管理", Role.ADMIN, 1),
    ("ops", "周运营", Role.OPERATIONS, 5),
    ("manager", "陈主管", Role.MANAGER, 2),
    ("staff", "林小美", Role.STAFF, 3),
]


DEMO_SECRET = "demo-contact-secret"  # noqa: S105 (the sandbox's, never a real corp's)
DEMO_WECHAT_APPID = "wx_demo_official_account"


class Command(BaseCommand):
    help = "Create the demo tenant and its logins if they do not exist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox-url", default="", help="connect the demo to this sandbox")
        parser.add_argument("--site-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = self._organisation()
        if options["sandbox_url"]:
            self._connect_sandbox(tenant, options["sandbox_url"], options["site_url"])

    def _connect_sandbox(self, tenant: Tenant, sandbox_url: str, site_url: str) -> None:
        """The demo company's WeCom is the sandbox: same corp, secrets and address book; its
        callbacks come to this Siyu. A reconciliation then syncs what the sandbox holds."""
        from siyu.sandbox.client import SandboxControl
        from siyu.wecom.sync.services import reconcile

        tenant.wecom_base_url = sandbox_url + "/cgi-bin/"
        tenant.contact_secret = DEMO_SECRET
        tenant.app_secret = DEMO_SECRET + "-app"
        tenant.agent_id = "1000002"
        # H5 pages identify visitors through the sandbox's WeChat OAuth.
        tenant.wechat_appid = DEMO_WECHAT_APPID
        tenant.wechat_secret = DEMO_SECRET + "-mp"
        tenant.wechat_oauth_url = sandbox_url + "/connect/oauth2/authorize"
        tenant.wechat_api_base_url = sandbox_url + "/"
        tenant.save()
        with SandboxControl(sandbox_url) as control:
            control.register_wechat_app(DEMO_WECHAT_APPID, DEMO_SECRET + "-mp")
            control.create_corp(
                tenant.corp_id,
                DEMO_SECRET,
                app_secret=DEMO_SECRET + "-app",
                agent_id="1000002",
                corp_name=tenant.name,
                callback_url=f"{site_url}/wecom/callback/{tenant.slug}/",
                callback_token=tenant.callback_token,
                callback_aes_key=tenant.callback_aes_key,
            )
            control.add_departments(
                tenant.corp_id,
                [{"id": d, "name": n, "parentid": p} for d, n, p in DEMO_DEPARTMENTS if p],
            )
            control.add_staff(
                tenant.corp_id,
                [
                    {"userid": u, "name": n, "department": [d], "main_department": d}
                    for u, n, _, d in DEMO_LOGINS
                ],
            )
        run = reconcile(tenant)
        self.stdout.write(f"demo connected to the sandbox at {sandbox_url}: sync {run.status}")

    @transaction.atomic
    def _organisation(self) -> Tenant:
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            tenant = tenant_create(slug="demo", name="示例科技有限公司", corp_id="ww_demo_corp")
        with tenant_context(tenant):
            for wecom_id, name, parent in DEMO_DEPARTMENTS:
                department_upsert(wecom_id=wecom_id, name=name, parent_wecom_id=parent)
            for username, name, role, dept in DEMO_LOGINS:
                member = staff_upsert(userid=username, name=name, department_wecom_ids=[dept])
                if member.role != role:
                    member.role = role
                    member.save(update_fields=["role"])
                if member.user is None:
                    staff_grant_login(member=member, username=username, password=DEMO_PASSWORD)
        self.stdout.write(f"demo tenant ready: logins {', '.join(u for u, *_ in DEMO_LOGINS)}")
        return tenant
