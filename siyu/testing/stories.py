"""Story fixtures: two companies with a department tree and a member of every role.

acme (the tenant under test)            globex (the outsider tenant)
  总部 ─┬─ 销售部 ─┬─ 华东组   alice        总部   boss_g, admin_g, dave
        │          └─ 华南组   bob
        └─ 市场部              ops, carol
  boss, admin in 总部; manager heads 销售部.
"""

from dataclasses import dataclass

from siyu.accounts.models import Role, StaffMember
from siyu.accounts.services import department_upsert, staff_grant_login, staff_upsert
from siyu.core.models import Tenant
from siyu.core.services import tenant_create
from siyu.core.tenancy import tenant_context

PASSWORD = "story-password-1"  # noqa: S105
# Tests never talk to the real WeCom: a closed loopback port answers "connection refused" at
# once; tests that need WeCom start the sandbox and point the tenant at it.
OFFLINE_WECOM = "http://127.0.0.1:9/cgi-bin/"


@dataclass
class Company:
    tenant: Tenant
    members: dict[str, StaffMember]

    def __getitem__(self, key: str) -> StaffMember:
        return self.members[key]


def _member(userid: str, name: str, role: str, dept: int, *, login: str) -> StaffMember:
    member = staff_upsert(userid=userid, name=name, department_wecom_ids=[dept])
    member.role = role
    member.save(update_fields=["role"])
    return staff_grant_login(member=member, username=login, password=PASSWORD)


def build_acme() -> Company:
    tenant = tenant_create(
        slug="acme", name="Acme 科技", corp_id="ww_acme_corp", wecom_base_url=OFFLINE_WECOM
    )
    with tenant_context(tenant):
        department_upsert(wecom_id=1, name="总部")
        department_upsert(wecom_id=2, name="销售部", parent_wecom_id=1)
        department_upsert(wecom_id=3, name="华东组", parent_wecom_id=2)
        department_upsert(wecom_id=4, name="华南组", parent_wecom_id=2)
        department_upsert(wecom_id=5, name="市场部", parent_wecom_id=1)
        members = {
            "boss": _member("boss", "王总", Role.BOSS, 1, login="acme-boss"),
            "admin": _member("admin", "管理员小李", Role.ADMIN, 1, login="acme-admin"),
            "ops": _member("ops", "运营小周", Role.OPERATIONS, 5, login="acme-ops"),
            "manager": _member("manager", "销售主管", Role.MANAGER, 2, login="acme-manager"),
            "alice": _member("alice", "Alice", Role.STAFF, 3, login="acme-alice"),
            "bob": _member("bob", "Bob", Role.STAFF, 4, login="acme-bob"),
            "carol": _member("carol", "Carol", Role.STAFF, 5, login="acme-carol"),
        }
    return Company(tenant, members)


def build_globex() -> Company:
    tenant = tenant_create(
        slug="globex", name="Globex 贸易", corp_id="ww_globex_corp", wecom_base_url=OFFLINE_WECOM
    )
    with tenant_context(tenant):
        department_upsert(wecom_id=1, name="总部")
        members = {
            "boss": _member("boss", "Globex 老板", Role.BOSS, 1, login="globex-boss"),
            "admin": _member("admin", "Globex 管理员", Role.ADMIN, 1, login="globex-admin"),
            "dave": _member("dave", "Dave", Role.STAFF, 1, login="globex-dave"),
        }
    return Company(tenant, members)
