"""The taxonomy in Siyu and in WeCom (the sandbox, over HTTP) converge whichever side edits."""

from typing import Any

import pytest
from django.test import Client

from siyu.core.tenancy import tenant_context
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.sandbox.state import Tag as WeComTag
from siyu.sandbox.state import TagGroup as WeComTagGroup
from siyu.tags.models import Tag, TagGroup
from siyu.testing.stories import Company
from siyu.wecom.callback.inbox import inbox_process
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.sync.services import reconcile


def wecom_taxonomy(sandbox: Sandbox, corpid: str) -> set[tuple[Any, ...]]:
    corp = sandbox.world.corps[corpid]
    return {
        (g.group_id, g.group_name, g.order, frozenset((t.id, t.name, t.order) for t in g.tag))
        for g in corp.tag_groups.values()
    }


def siyu_taxonomy(company: Company) -> set[tuple[Any, ...]]:
    with tenant_context(company.tenant):
        return {
            (
                g.wecom_id,
                g.name,
                g.order,
                frozenset((t.wecom_id, t.name, t.order) for t in g.tags.all()),
            )
            for g in TagGroup.objects.prefetch_related("tags")
        }


def _post(client: Client, path: str, body: dict[str, Any], method: str = "post") -> Any:
    return getattr(client, method)(
        f"/api/v1/tags{path}", data=body, content_type="application/json"
    )


def test_a_group_created_in_siyu_is_created_in_wecom_with_its_ids(
    wecom_acme: Company, sandbox: Sandbox, login
) -> None:
    ops = login.token(wecom_acme["ops"])
    response = _post(
        ops,
        "/groups",
        {"name": "付费阶段", "tags": ["普通", "意向", "付费"], "order": 5, "required": True},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["order"], body["required"]) == ("付费阶段", 5, True)
    assert [t["name"] for t in body["tags"]] == ["普通", "意向", "付费"]
    assert siyu_taxonomy(wecom_acme) == wecom_taxonomy(sandbox, wecom_acme.tenant.corp_id)

    added = _post(ops, f"/groups/{body['id']}/tags", {"name": "复购", "order": 9})
    assert added.status_code == 201, added.content
    assert added.json()["wecom_id"]
    assert siyu_taxonomy(wecom_acme) == wecom_taxonomy(sandbox, wecom_acme.tenant.corp_id)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "长" * 31, "tags": ["a"]}, 400, "invalid_input"),
        ({"name": "地区", "tags": []}, 400, "invalid_input"),
        ({"name": "地区", "tags": ["华东", "华东"]}, 400, "invalid_input"),
        ({"name": "地区", "tags": ["长" * 31]}, 400, "invalid_input"),
        ({"name": "地区", "tags": ["华东"], "order": -1}, 400, "invalid_input"),
        ({"name": "画像", "tags": ["企业主"]}, 409, "tag_name_taken"),
    ],
)
def test_bad_groups_are_refused_and_nothing_changes(
    wecom_acme: Company, sandbox: Sandbox, login, body: dict[str, Any], status: int, code: str
) -> None:
    ops = login.token(wecom_acme["ops"])
    assert _post(ops, "/groups", {"name": "画像", "tags": ["IP"]}).status_code == 201
    before = siyu_taxonomy(wecom_acme)
    response = _post(ops, "/groups", body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert siyu_taxonomy(wecom_acme) == before
    assert wecom_taxonomy(sandbox, wecom_acme.tenant.corp_id) == before


def test_wecom_refusals_become_clear_errors(wecom_acme: Company, sandbox: Sandbox, login) -> None:
    corpid = wecom_acme.tenant.corp_id
    ops = login.token(wecom_acme["ops"])
    group = _post(ops, "/groups", {"name": "画像", "tags": ["IP", "企业主"]}).json()
    ip = group["tags"][0]
    # A name WeCom already has but Siyu has not heard of yet: WeCom's 40071 decides.
    wecom_group = sandbox.world.corps[corpid].tag_groups[group["wecom_id"]]
    wecom_group.tag.append(WeComTag(id="et-unsynced", name="操盘手"))
    renamed = _post(ops, f"/{ip['id']}", {"name": "操盘手"}, method="patch")
    assert (renamed.status_code, renamed.json()["code"]) == (409, "tag_name_taken")
    with tenant_context(wecom_acme.tenant):
        assert Tag.objects.get(pk=ip["id"]).name == "IP"

    # 3000 corp tags is WeCom's cap (40126): a clear 409, nothing created on either side.
    sandbox.world.corps[corpid].tag_groups["et-full"] = WeComTagGroup(
        group_id="et-full",
        group_name="批量",
        tag=[WeComTag(id=f"et-{i}", name=f"t{i}") for i in range(2997)],
    )
    full = _post(ops, f"/groups/{group['id']}/tags", {"name": "打工人"})
    assert (full.status_code, full.json()["code"]) == (409, "tag_limit_reached")
    with tenant_context(wecom_acme.tenant):
        assert sorted(Tag.objects.values_list("name", flat=True)) == ["IP", "企业主"]
    assert "打工人" not in {t.name for t in wecom_group.tag}


def test_wecom_down_changes_nothing(wecom_acme: Company, sandbox: Sandbox, login) -> None:
    ops = login.token(wecom_acme["ops"])
    group = _post(ops, "/groups", {"name": "地区", "tags": ["华东"]}).json()
    tenant = wecom_acme.tenant
    tenant.wecom_base_url = "http://127.0.0.1:9/cgi-bin/"
    tenant.save()
    response = _post(ops, f"/groups/{group['id']}", {"name": "区域"}, method="patch")
    assert (response.status_code, response.json()["code"]) == (503, "wecom_unavailable")
    with tenant_context(tenant):
        assert TagGroup.objects.get().name == "地区"


def _process_callbacks(company: Company, control: SandboxControl) -> None:
    assert control.flush_callbacks(timeout=60)
    with tenant_context(company.tenant):
        pending = list(
            CallbackInbox.objects.filter(status=InboxStatus.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    assert pending, "the sandbox delivered no callback"
    assert {inbox_process(inbox_id=pk) for pk in pending} == {"done"}


@pytest.mark.django_db(transaction=True)
def test_edits_in_both_places_converge(
    wecom_acme: Company, sandbox: Sandbox, live_server: Any, login
) -> None:
    tenant = wecom_acme.tenant
    corpid = tenant.corp_id
    control = SandboxControl(sandbox.base_url)
    control.create_corp(
        corpid,
        tenant.contact_secret,
        callback_url=f"{live_server.url}/wecom/callback/{tenant.slug}/",
    )
    ops = login.token(wecom_acme["ops"])

    # Siyu: two groups, a rename, a reorder, a deleted tag.
    stage = _post(ops, "/groups", {"name": "付费阶段", "tags": ["普通", "意向", "付费"]}).json()
    region = _post(ops, "/groups", {"name": "地区", "tags": ["华东", "华南"], "order": 1}).json()
    assert _post(ops, f"/groups/{stage['id']}", {"order": 10}, method="patch").status_code == 200
    normal, intent, paid = stage["tags"]
    assert _post(ops, f"/{intent['id']}", {"name": "高意向"}, method="patch").status_code == 200
    assert _post(ops, f"/{normal['id']}", {}, method="delete").status_code == 204

    # WeCom's admin console: a tag in a Siyu group, a new group, and a Siyu tag deleted there.
    vip = control.simulate(corpid, "admin_create_tag", group_name="付费阶段", name="VIP")
    control.simulate(corpid, "admin_create_tag", group_name="批次", name="创始会员")
    control.simulate(corpid, "admin_delete_tag", tag_id=region["tags"][1]["wecom_id"])
    _process_callbacks(wecom_acme, control)

    # Siyu again, on what WeCom created.
    with tenant_context(tenant):
        vip_tag = Tag.objects.get(wecom_id=vip["tag_id"])
    assert _post(ops, f"/{vip_tag.pk}", {"order": 3}, method="patch").status_code == 200
    assert _post(ops, f"/{paid['id']}", {}, method="delete").status_code == 204

    assert siyu_taxonomy(wecom_acme) == wecom_taxonomy(sandbox, corpid)
    run = reconcile(tenant)
    assert run.status == "done", run.error
    assert siyu_taxonomy(wecom_acme) == wecom_taxonomy(sandbox, corpid)
    with tenant_context(tenant):
        assert {
            (g.name, tuple(g.tags.values_list("name", flat=True))) for g in TagGroup.objects.all()
        } == {("付费阶段", ("VIP", "高意向")), ("地区", ("华东",)), ("批次", ("创始会员",))}
