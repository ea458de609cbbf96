"""Callbacks leave the sandbox as WeCom sends them: encrypted, signed, retried, and — when
asked — dropped, duplicated and reordered."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.testing.http import Received, Receiver, http_receiver
from siyu.wecom.crypto import MsgCrypt, parse_xml

CORP = "ww_callback_test"
TOKEN = "cbtoken"  # noqa: S105
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver([200]) as r:
        yield r


@pytest.fixture
def control(sandbox: Sandbox, receiver: Receiver) -> SandboxControl:
    c = SandboxControl(sandbox.base_url)
    c.create_corp(CORP, "s", callback_url=receiver.url, callback_token=TOKEN, callback_aes_key=KEY)
    c.add_staff(CORP, [{"userid": "alice", "name": "Alice"}])
    return c


def decrypt(request: Received) -> dict[str, Any]:
    query = {k: v[0] for k, v in parse_qs(urlparse(request.path).query).items()}
    plain = MsgCrypt(TOKEN, KEY, CORP).decrypt_message(
        query["msg_signature"], query["timestamp"], query["nonce"], request.body
    )
    return parse_xml(plain)


def test_an_add_arrives_encrypted_with_wecoms_fields(
    control: SandboxControl, receiver: Receiver
) -> None:
    added = control.simulate(CORP, "add", userid="alice", state="ch:7", at=1_700_000_000)
    assert control.flush_callbacks()
    (request,) = receiver.requests
    assert b"<Encrypt>" in request.body
    event = decrypt(request)
    assert event == {
        "ToUserName": CORP,
        "FromUserName": "sys",
        "CreateTime": "1700000000",
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "alice",
        "ExternalUserID": added["external_userid"],
        "State": "ch:7",
        "WelcomeCode": added["welcome_code"],
    }


def test_group_updates_carry_member_versions_and_items(
    control: SandboxControl, receiver: Receiver
) -> None:
    ext = control.simulate(CORP, "add", userid="alice")["external_userid"]
    chat = control.simulate(CORP, "create_group", owner="alice")["chat_id"]
    control.simulate(CORP, "join_group", chat_id=chat, external_userid=ext)
    assert control.flush_callbacks()
    # Four delivery workers run at once, as WeCom's do: pick the update by content, not position.
    events = [decrypt(r) for r in receiver.requests]
    (update,) = [e for e in events if e.get("ChangeType") == "update"]
    assert update["UpdateDetail"] == "add_member"
    assert update["MemChangeList"] == {"Item": ext}
    assert (update["LastMemVer"], update["CurMemVer"]) == ("1", "2")


def test_a_failing_receiver_gets_three_retries(sandbox: Sandbox) -> None:
    with http_receiver([500]) as failing:
        c = SandboxControl(sandbox.base_url)
        c.create_corp(
            CORP, "s", callback_url=failing.url, callback_token=TOKEN, callback_aes_key=KEY
        )
        c.add_staff(CORP, [{"userid": "alice", "name": "Alice"}])
        c.simulate(CORP, "add", userid="alice")
        assert c.flush_callbacks()
        assert len(failing.requests) == 4  # one delivery and WeCom's three retries
        assert c.callbacks(CORP)["summary"]["failed"] == 1


def test_a_recovering_receiver_gets_the_event(sandbox: Sandbox) -> None:
    with http_receiver([503, 200]) as flaky:
        c = SandboxControl(sandbox.base_url)
        c.create_corp(CORP, "s", callback_url=flaky.url, callback_token=TOKEN, callback_aes_key=KEY)
        c.add_staff(CORP, [{"userid": "alice", "name": "Alice"}])
        c.simulate(CORP, "add", userid="alice")
        c.flush_callbacks()
        assert len(flaky.requests) == 2
        assert c.callbacks(CORP)["summary"]["delivered"] == 1


def test_drops_and_duplicates_happen_at_the_configured_rates(
    control: SandboxControl, receiver: Receiver
) -> None:
    control.set_faults(drop_rate=0.2, duplicate_rate=0.2, seed=1)
    control.batch(CORP, [("add", {"userid": "alice"}) for _ in range(500)])
    control.flush_callbacks()
    summary = control.callbacks(CORP)["summary"]
    assert 70 <= summary["dropped"] <= 130
    assert 60 <= summary["duplicates"] <= 110
    assert len(receiver.requests) == 500 - summary["dropped"] + summary["duplicates"]


def test_reordering_shuffles_a_window(control: SandboxControl, receiver: Receiver) -> None:
    control.set_faults(reorder_window=20, seed=3)
    results = control.batch(CORP, [("add", {"userid": "alice"}) for _ in range(20)])
    control.flush_callbacks()
    sent = [r["result"]["external_userid"] for r in results]
    got = [decrypt(r)["ExternalUserID"] for r in receiver.requests]
    assert sorted(got) == sorted(sent)
    assert got != sent


def test_api_changes_fire_no_callbacks(
    control: SandboxControl, receiver: Receiver, sandbox: Sandbox
) -> None:
    import httpx

    token = httpx.get(
        sandbox.api_base + "gettoken", params={"corpid": CORP, "corpsecret": "s"}
    ).json()["access_token"]
    httpx.post(
        sandbox.api_base + "externalcontact/add_corp_tag",
        params={"access_token": token},
        json={"group_name": "g", "tag": [{"name": "t"}]},
    )
    control.flush_callbacks()
    assert receiver.requests == []
