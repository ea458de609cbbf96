"""The callback URL: verifies, decrypts, stores before answering, and refuses everything else."""

import time
from typing import Any

import pytest
from django.test import Client

from siyu.testing.stories import Company
from siyu.wecom.crypto import MsgCrypt
from siyu.wecom.models import CallbackInbox
from siyu.wecom.tests.builders import event_xml

URL = "/wecom/callback/acme/"


@pytest.fixture
def crypt(acme: Company) -> MsgCrypt:
    tenant = acme.tenant
    return MsgCrypt(tenant.callback_token, tenant.callback_aes_key, tenant.corp_id)


def _post(
    crypt: MsgCrypt,
    inner: str,
    *,
    timestamp: str | None = None,
    nonce: str = "12345",
    tamper: bool = False,
) -> Any:
    ts = timestamp or str(int(time.time()))
    body, signature = crypt.encrypt_message(inner, timestamp=ts, nonce=nonce)
    if tamper:
        signature = ("0" if signature[0] != "0" else "1") + signature[1:]
    return Client().post(
        f"{URL}?msg_signature={signature}&timestamp={ts}&nonce={nonce}",
        data=body,
        content_type="text/xml",
    )


def _inner(acme: Company, ext: str = "wm001") -> str:
    return event_xml(
        corp_id=acme.tenant.corp_id,
        event="change_external_contact",
        change_type="add_external_contact",
        UserID="alice",
        ExternalUserID=ext,
        WelcomeCode="W",
    )


def test_url_verification_echoes_the_plaintext(acme: Company, crypt: MsgCrypt) -> None:
    ts = str(int(time.time()))
    echostr = crypt.encrypt("1616140317555161061")
    from siyu.wecom.crypto import compute_signature

    signature = compute_signature(crypt.token, ts, "n1", echostr)
    response = Client().get(
        URL, {"msg_signature": signature, "timestamp": ts, "nonce": "n1", "echostr": echostr}
    )
    assert response.status_code == 200
    assert response.content == b"1616140317555161061"  # bare: no quotes, BOM or newline
    forged = Client().get(
        URL, {"msg_signature": "0" * 40, "timestamp": ts, "nonce": "n1", "echostr": echostr}
    )
    assert forged.status_code == 403


def test_a_valid_event_is_stored_before_the_answer(acme: Company, crypt: MsgCrypt) -> None:
    response = _post(crypt, _inner(acme))
    assert (response.status_code, response.content) == (200, b"success")
    item = CallbackInbox.unscoped.get()
    assert (item.tenant_id, item.event, item.change_type) == (
        acme.tenant.pk,
        "change_external_contact",
        "add_external_contact",
    )
    assert item.data["ExternalUserID"] == "wm001"


def test_a_retried_delivery_is_acknowledged_but_stored_once(acme: Company, crypt: MsgCrypt) -> None:
    inner = _inner(acme)
    for nonce in ("1", "2", "3"):  # WeCom's retries re-sign, the message is the same
        assert _post(crypt, inner, nonce=nonce).status_code == 200
    item = CallbackInbox.unscoped.get()
    assert item.duplicates == 2


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        ({"tamper": True}, 403),
        ({"timestamp": str(int(time.time()) - 3600)}, 403),
        ({"timestamp": "yesterday"}, 400),
    ],
)
def test_forged_or_replayed_requests_are_refused(
    acme: Company, crypt: MsgCrypt, mutate: dict[str, Any], status: int
) -> None:
    assert _post(crypt, _inner(acme), **mutate).status_code == status
    assert not CallbackInbox.unscoped.exists()


def test_a_message_for_another_corp_is_refused(acme: Company) -> None:
    tenant = acme.tenant
    other = MsgCrypt(tenant.callback_token, tenant.callback_aes_key, "ww_someone_else")
    assert _post(other, _inner(acme)).status_code == 400
    assert not CallbackInbox.unscoped.exists()


def test_a_message_encrypted_with_another_key_is_refused(acme: Company) -> None:
    other = MsgCrypt(acme.tenant.callback_token, "B" * 43, acme.tenant.corp_id)
    assert _post(other, _inner(acme)).status_code == 400
    assert not CallbackInbox.unscoped.exists()


@pytest.mark.parametrize(
    "inner",
    [
        "<xml><Event>unclosed",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><xml><Event>&b;</Event></xml>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Event>&e;</Event></xml>',
        "<xml><MsgType>text</MsgType></xml>",
    ],
    ids=["malformed", "entity-bomb", "external-entity", "not-an-event"],
)
def test_malformed_and_hostile_xml_is_refused(acme: Company, crypt: MsgCrypt, inner: str) -> None:
    assert _post(crypt, inner).status_code == 400
    assert not CallbackInbox.unscoped.exists()


def test_hostile_envelopes_are_refused_before_decryption(acme: Company) -> None:
    ts = str(int(time.time()))
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "a">]><xml><Encrypt>&a;</Encrypt></xml>'
    url = f"{URL}?msg_signature={'a' * 40}&timestamp={ts}&nonce=1"
    assert Client().post(url, data=bomb, content_type="text/xml").status_code == 400
    huge = "<xml><Encrypt>" + "A" * (70 * 1024) + "</Encrypt></xml>"
    assert Client().post(url, data=huge, content_type="text/xml").status_code == 413
    assert not CallbackInbox.unscoped.exists()


def test_unknown_tenant_and_missing_parameters(acme: Company, crypt: MsgCrypt) -> None:
    assert (
        Client().post("/wecom/callback/nobody/?msg_signature=x&timestamp=1&nonce=1").status_code
        == 404
    )
    assert Client().post(URL, data="<xml/>", content_type="text/xml").status_code == 400
    assert Client().put(URL).status_code == 405


def test_a_tenant_with_a_broken_key_answers_503_not_500(acme: Company, crypt: MsgCrypt) -> None:
    from siyu.core.models import Tenant

    Tenant.objects.filter(pk=acme.tenant.pk).update(callback_aes_key="")
    assert _post(crypt, _inner(acme)).status_code == 503
    assert not CallbackInbox.unscoped.exists()
