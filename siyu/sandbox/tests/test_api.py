"""The sandbox answers like WeCom: tokens, errcodes, clamps, quotas and the clock."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox

CORP = "ww_sandbox_test"


class Api:
    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.api_base
        self.http = httpx.Client()
        self.refresh()

    def refresh(self) -> None:
        self.token = self.http.get(
            self.base + "gettoken", params={"corpid": CORP, "corpsecret": "s3cret"}
        ).json()["access_token"]

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.http.get(self.base + path, params={"access_token": self.token, **params}).json()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.http.post(
            self.base + path, params={"access_token": self.token}, json=body
        ).json()


@pytest.fixture
def control(sandbox: Sandbox) -> Iterator[SandboxControl]:
    with SandboxControl(sandbox.base_url) as c:
        c.create_corp(CORP, "s3cret", app_secret="app", agent_id="1000002")
        c.add_staff(CORP, [{"userid": u, "name": u.title()} for u in ("alice", "bob", "idle")])
        yield c


@pytest.fixture
def api(sandbox: Sandbox, control: SandboxControl) -> Api:
    return Api(sandbox)


def _way(api: Api, **extra: Any) -> str:
    result = api.post(
        "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice"], **extra}
    )
    assert result["errcode"] == 0, result
    return str(result["config_id"])


def test_tokens_are_reused_expire_and_can_be_revoked(
    sandbox: Sandbox, control: SandboxControl
) -> None:
    http = httpx.Client()
    url = sandbox.api_base + "gettoken"
    first = http.get(url, params={"corpid": CORP, "corpsecret": "s3cret"}).json()
    again = http.get(url, params={"corpid": CORP, "corpsecret": "s3cret"}).json()
    assert (first["errcode"], first["expires_in"]) == (0, 7200)
    assert again["access_token"] == first["access_token"]
    assert http.get(url, params={"corpid": CORP, "corpsecret": "wrong"}).json()["errcode"] == 40001
    assert http.get(url, params={"corpid": "nope", "corpsecret": "x"}).json()["errcode"] == 40013
    assert http.get(url, params={"corpsecret": "x"}).json()["errcode"] == 41002
    call = sandbox.api_base + "externalcontact/get_follow_user_list"
    assert http.get(call).json()["errcode"] == 41001
    assert http.get(call, params={"access_token": "forged"}).json()["errcode"] == 40014
    control.advance_clock(7201)
    assert http.get(call, params={"access_token": first["access_token"]}).json()["errcode"] == 42001
    fresh = http.get(url, params={"corpid": CORP, "corpsecret": "s3cret"}).json()["access_token"]
    assert fresh != first["access_token"]
    control.expire_tokens()
    assert http.get(call, params={"access_token": fresh}).json()["errcode"] == 42001


def test_errors_carry_wecom_hint_and_empty_payload(api: Api) -> None:
    result = api.get("externalcontact/list", userid="idle")
    assert result["errcode"] == 84061
    assert result["external_userid"] == []
    assert "hint: [" in result["errmsg"]
    assert "more info at https://open.work.weixin.qq.com/devtool/query?e=84061" in result["errmsg"]


def test_malformed_json_and_wrong_method(api: Api) -> None:
    bad = api.http.post(
        api.base + "externalcontact/add_contact_way",
        params={"access_token": api.token},
        content=b"{nope",
    )
    assert bad.json()["errcode"] == 40058
    assert "wrong json format" in bad.json()["errmsg"]
    assert api.get("externalcontact/add_contact_way")["errcode"] == 40058
    assert (
        api.http.get(api.base + "no/such/api", params={"access_token": api.token}).status_code
        == 404
    )


def test_contact_way_rules(api: Api) -> None:
    assert (
        api.post(
            "externalcontact/add_contact_way",
            {"type": 1, "scene": 2, "user": ["alice"], "state": "x" * 31},
        )["errcode"]
        == 40058
    )
    assert (
        api.post(
            "externalcontact/add_contact_way", {"type": 1, "scene": 2, "user": ["alice", "bob"]}
        )["errcode"]
        == 41039
    )
    assert (
        api.post("externalcontact/add_contact_way", {"type": 3, "scene": 2, "user": ["alice"]})[
            "errcode"
        ]
        == 41037
    )
    assert (
        api.post("externalcontact/add_contact_way", {"type": 2, "scene": 2, "user": ["ghost"]})[
            "errcode"
        ]
        == 60111
    )
    config_id = _way(api, state="ch:1", remark="门店")
    got = api.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
    assert (got["state"], got["user"], got["qr_code"].endswith(".png")) == ("ch:1", ["alice"], True)
    assert (
        api.post("externalcontact/update_contact_way", {"config_id": config_id, "state": "ch:2"})[
            "errcode"
        ]
        == 0
    )
    assert (
        api.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"][
            "state"
        ]
        == "ch:2"
    )
    assert api.post("externalcontact/del_contact_way", {"config_id": config_id})["errcode"] == 0
    assert api.post("externalcontact/get_contact_way", {"config_id": config_id})["errcode"] == 41044


def test_a_scan_creates_a_relation_visible_through_the_api(
    api: Api, control: SandboxControl
) -> None:
    config_id = _way(api, state="c:9")
    added = control.scan(CORP, config_id=config_id, name="小红")
    ext = added["external_userid"]
    assert ext.startswith("wm")
    assert api.get("externalcontact/list", userid="alice")["external_userid"] == [ext]
    contact = api.get("externalcontact/get", external_userid=ext)
    assert contact["external_contact"]["name"] == "小红"
    assert contact["external_contact"]["unionid"] == added["unionid"]
    (follow,) = contact["follow_user"]
    assert (follow["userid"], follow["state"], follow["add_way"]) == ("alice", "c:9", 1)
    assert api.get("externalcontact/get", external_userid="wmnope")["errcode"] == 40096


def test_the_welcome_code_works_once_within_20_seconds(api: Api, control: SandboxControl) -> None:
    config_id = _way(api)
    first = control.scan(CORP, config_id=config_id)["welcome_code"]
    assert (
        api.post(
            "externalcontact/send_welcome_msg", {"welcome_code": first, "text": {"content": "欢迎"}}
        )["errcode"]
        == 0
    )
    assert (
        api.post(
            "externalcontact/send_welcome_msg", {"welcome_code": first, "text": {"content": "欢迎"}}
        )["errcode"]
        == 41051
    )
    late = control.scan(CORP, config_id=config_id)["welcome_code"]
    control.advance_clock(21)
    assert (
        api.post(
            "externalcontact/send_welcome_msg", {"welcome_code": late, "text": {"content": "欢迎"}}
        )["errcode"]
        == 41050
    )
    assert (
        api.post(
            "externalcontact/send_welcome_msg",
            {"welcome_code": "made-up", "text": {"content": "x"}},
        )["errcode"]
        == 41050
    )
    assert (
        api.post("externalcontact/send_welcome_msg", {"text": {"content": "x"}})["errcode"] == 41049
    )


def test_batch_get_by_user_pages_and_clamps(api: Api, control: SandboxControl) -> None:
    control.batch(CORP, [("add", {"userid": "bob"}) for _ in range(130)])
    seen, cursor, pages = [], "", 0
    while True:
        page = api.post(
            "externalcontact/batch/get_by_user",
            {"userid_list": ["bob"], "limit": 500, "cursor": cursor},
        )
        assert page["errcode"] == 0
        assert len(page["external_contact_list"]) <= 100  # a larger limit is clamped
        seen += [
            row["external_contact"]["external_userid"] for row in page["external_contact_list"]
        ]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert (len(seen), len(set(seen)), pages) == (130, 130, 2)
    assert (
        api.post(
            "externalcontact/batch/get_by_user", {"userid_list": [f"u{i}" for i in range(101)]}
        )["errcode"]
        == 40058
    )


def test_tags_are_created_marked_and_deleted(api: Api, control: SandboxControl) -> None:
    created = api.post(
        "externalcontact/add_corp_tag",
        {"group_name": "意向", "tag": [{"name": "高"}, {"name": "高"}, {"name": "低"}]},
    )
    tags = created["tag_group"]["tag"]
    assert [t["name"] for t in tags] == ["高", "低"]  # duplicate names collapse
    ext = control.simulate(CORP, "add", userid="alice")["external_userid"]
    assert (
        api.post(
            "externalcontact/mark_tag",
            {"userid": "alice", "external_userid": ext, "add_tag": [tags[0]["id"]]},
        )["errcode"]
        == 0
    )
    assert (
        api.post(
            "externalcontact/mark_tag",
            {"userid": "alice", "external_userid": ext, "add_tag": ["etnope"]},
        )["errcode"]
        == 40068
    )
    follow = api.get("externalcontact/get", external_userid=ext)["follow_user"][0]
    assert [t["tag_name"] for t in follow["tags"]] == ["高"]
    group_id = created["tag_group"]["group_id"]
    api.post("externalcontact/del_corp_tag", {"tag_id": [t["id"] for t in tags]})
    assert (
        api.post("externalcontact/get_corp_tag_list", {})["tag_group"] == []
    )  # the empty group went too
    assert (
        api.post("externalcontact/edit_corp_tag", {"id": group_id, "name": "x"})["errcode"] == 40068
    )


@pytest.mark.parametrize(("rule", "second_status"), [("one_per_day", 3), ("days_in_month", 1)])
def test_mass_send_receive_quota(
    api: Api, control: SandboxControl, rule: str, second_status: int
) -> None:
    control.create_corp(CORP, "s3cret", mass_send_rule=rule)
    ext = control.simulate(CORP, "add", userid="alice")["external_userid"]
    statuses = []
    for n in range(2):
        msg = api.post(
            "externalcontact/add_msg_template",
            {"external_userid": [ext], "text": {"content": f"第{n}条"}},
        )
        assert msg["errcode"] == 0, msg
        assert api.post("externalcontact/get_groupmsg_task", {"msgid": msg["msgid"]})[
            "task_list"
        ] == [{"userid": "alice", "status": 0}]
        control.simulate(CORP, "confirm_mass_send", msgid=msg["msgid"], userid="alice")
        result = api.post(
            "externalcontact/get_groupmsg_send_result", {"msgid": msg["msgid"], "userid": "alice"}
        )
        statuses.append(result["send_list"][0]["status"])
    assert statuses == [1, second_status]
    nobody = api.post(
        "externalcontact/add_msg_template",
        {"external_userid": ["wmghost"], "text": {"content": "x"}},
    )
    assert (nobody["errcode"], nobody["fail_list"]) == (41048, ["wmghost"])


def test_transfers_complete_after_24_hours_or_fail_on_refusal(
    api: Api, control: SandboxControl
) -> None:
    a = control.simulate(CORP, "add", userid="alice")["external_userid"]
    b = control.simulate(CORP, "add", userid="alice")["external_userid"]
    result = api.post(
        "externalcontact/transfer_customer",
        {
            "handover_userid": "alice",
            "takeover_userid": "bob",
            "external_userid": [a, b, "wmghost"],
        },
    )
    assert [c["errcode"] for c in result["customer"]] == [0, 0, 40096]
    again = api.post(
        "externalcontact/transfer_customer",
        {"handover_userid": "alice", "takeover_userid": "bob", "external_userid": [a]},
    )
    assert again["customer"][0]["errcode"] == 40129  # already in progress
    control.simulate(CORP, "refuse_transfer", external_userid=b)
    control.advance_clock(86400 + 1)
    api.refresh()  # a day later the token has long expired
    statuses = {
        c["external_userid"]: c["status"]
        for c in api.post(
            "externalcontact/transfer_result",
            {"handover_userid": "alice", "takeover_userid": "bob"},
        )["customer"]
    }
    assert statuses == {a: 1, b: 3}
    assert a in api.get("externalcontact/list", userid="bob")["external_userid"]


def test_rate_limits_answer_45009_for_the_rest_of_the_minute(
    api: Api, control: SandboxControl
) -> None:
    control.set_limits(overrides={"externalcontact/get_follow_user_list": {"per_minute": 3}})
    codes = [api.get("externalcontact/get_follow_user_list")["errcode"] for _ in range(5)]
    assert codes == [0, 0, 0, 45009, 45009]
    assert api.post("externalcontact/get_corp_tag_list", {})["errcode"] == 0  # per API


def test_group_chats_are_listed_and_read(api: Api, control: SandboxControl) -> None:
    ext = control.simulate(CORP, "add", userid="alice")["external_userid"]
    chat_id = control.simulate(CORP, "create_group", owner="alice", name="VIP 群")["chat_id"]
    control.simulate(CORP, "join_group", chat_id=chat_id, external_userid=ext)
    assert api.post("externalcontact/groupchat/list", {"limit": 10})["group_chat_list"] == [
        {"chat_id": chat_id, "status": 0}
    ]
    chat = api.post("externalcontact/groupchat/get", {"chat_id": chat_id})["group_chat"]
    assert {m["userid"] for m in chat["member_list"]} == {"alice", ext}
    assert chat["member_version"] == "2"
    assert api.post("externalcontact/groupchat/list", {})["errcode"] == 40058  # limit is required


def test_app_messages_are_recorded(api: Api, sandbox: Sandbox) -> None:
    result = api.post(
        "message/send",
        {
            "touser": "alice|ghost",
            "msgtype": "text",
            "agentid": "1000002",
            "text": {"content": "您的客户刚打开了资料"},
        },
    )
    assert result["errcode"] == 0
    assert result["invaliduser"] == "ghost"
    assert sandbox.world.corps[CORP].app_messages[0]["touser"] == "alice"
    assert (
        api.post(
            "message/send",
            {"touser": "alice", "msgtype": "text", "agentid": "9", "text": {"content": "x"}},
        )["errcode"]
        == 301002
    )


def test_wechat_oauth_code_flow(sandbox: Sandbox, control: SandboxControl) -> None:
    control.register_wechat_app("wxapp", "wxsecret")
    visitor = control.set_visitor("wxapp", name="访客")
    http = httpx.Client()
    redirect = http.get(
        sandbox.base_url + "/connect/oauth2/authorize",
        params={
            "appid": "wxapp",
            "redirect_uri": "http://127.0.0.1:1/h5/?a=1",
            "response_type": "code",
            "scope": "snsapi_base",
            "state": "s1",
        },
    )
    assert redirect.status_code == 302
    location = httpx.URL(redirect.headers["Location"])
    assert (location.params["state"], location.params["a"]) == ("s1", "1")
    token_url = sandbox.base_url + "/sns/oauth2/access_token"
    params = {
        "appid": "wxapp",
        "secret": "wxsecret",
        "code": location.params["code"],
        "grant_type": "authorization_code",
    }
    first = http.get(token_url, params=params).json()
    assert (first["unionid"], first["openid"]) == (visitor["unionid"], visitor["openid"])
    assert http.get(token_url, params=params).json()["errcode"] == 40029  # codes work once
    assert http.get(token_url, params={**params, "secret": "bad"}).json()["errcode"] == 40125


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("corps", {"contact_secret": "x"}),
        ("corps", {"corpid": "x", "contact_secret": "y", "colour": "red"}),
        ("faults", {"drop_rate": 2}),
        ("faults", {"typo_rate": 0.1}),
        ("clock", {"advance_seconds": -5}),
        (f"corps/{CORP}/simulate/teleport", {}),
        (f"corps/{CORP}/simulate/scan", {"config_id": "cwnope"}),
    ],
)
def test_control_api_rejects_bad_input(
    sandbox: Sandbox, control: SandboxControl, path: str, body: dict[str, Any]
) -> None:
    before = control.dump(CORP)
    response = httpx.post(f"{sandbox.base_url}/sandbox/{path}", json=body)
    assert response.status_code in {400, 404}
    assert "error" in response.json()
    assert control.dump(CORP) == before


def test_a_snapshot_round_trips_the_world(
    api: Api, control: SandboxControl, sandbox: Sandbox, tmp_path: Path
) -> None:
    from siyu.sandbox.state import World

    ext = control.simulate(CORP, "add", userid="alice", state="s:1")["external_userid"]
    api.post("externalcontact/add_corp_tag", {"group_name": "等级", "tag": [{"name": "VIP"}]})
    control.simulate(CORP, "create_group", owner="alice", members=[ext])
    path = tmp_path / "world.json"
    sandbox.world.save(path)
    restored = World.load(path)
    assert restored.dump() == sandbox.world.dump()


def test_a_restarted_sandbox_still_knows_its_pay_merchants(
    control: SandboxControl, sandbox: Sandbox, tmp_path: Path
) -> None:
    # The demo replays its history in one sandbox and serves the live demo from another,
    # loaded from the first one's state file: its shop must still be able to take payments.
    from siyu.sandbox.state import World

    control.add_pay_merchant("1900000109", "wx_demo_app", "k" * 32)
    path = tmp_path / "world.json"
    sandbox.world.save(path)
    with Sandbox(world=World.load(path)) as restarted:
        merchant = restarted.pay.merchants["1900000109"]
    assert (merchant.appid, merchant.api_v3_key) == ("wx_demo_app", "k" * 32)
