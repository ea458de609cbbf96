"""WXBizMsgCrypt against the published vectors in shared/wecom/vectors.json, and its edges.

The helpers below re-derive the AES key and run raw AES-CBC themselves, so padding and layout
are checked independently of the code under test.
"""

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from siyu.wecom.crypto import (
    AesKeyError,
    Base64Error,
    CryptoError,
    DecryptError,
    IllegalBufferError,
    MsgCrypt,
    ParseError,
    ReceiveIdError,
    SignatureError,
    compute_signature,
    parse_xml,
)

VECTORS_PATH = Path(__file__).resolve().parents[3].parent / "shared" / "wecom" / "vectors.json"


def _load_vectors() -> dict[str, Any]:
    # Fail, never skip: a missing file would otherwise turn the whole suite green.
    if not VECTORS_PATH.is_file():
        pytest.fail(
            f"WeCom test vectors not found at {VECTORS_PATH}; the repository must sit beside "
            "shared/ (shared/wecom/vectors.json)",
            pytrace=False,
        )
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


VECTORS = _load_vectors()
POSITIVE: list[dict[str, Any]] = VECTORS["vectors"] + VECTORS["synthetic_vectors"]
NEGATIVE: list[dict[str, Any]] = VECTORS["negative_vectors"]


def _params(vectors: list[dict[str, Any]]) -> Any:
    return pytest.mark.parametrize("vector", vectors, ids=[v["id"] for v in vectors])


SIGNED = [v for v in POSITIVE if "msg_signature" in v]
DECRYPTABLE = [v for v in POSITIVE if "encoding_aes_key" in v and v["kind"] != "encrypt"]
URL_CHECKS = [v for v in POSITIVE if v["kind"] == "url_verification"]
ENVELOPES = [v for v in POSITIVE if "envelope_xml" in v]
JSON_POSTS = [v for v in POSITIVE if v["kind"] == "post_decrypt_json"]
DETERMINISTIC = [v for v in POSITIVE if "random16" in v]

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OTHER_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
CORP = "ww1234567890abcdef"  # 18 bytes, like a real corp id


def _receive_id(vector: dict[str, Any]) -> str:
    # go-workwx-signature-body names no receive id; its plaintext carries one.
    return vector.get("receiveid", vector.get("decrypted_receiveid", ""))


def _crypt(vector: dict[str, Any]) -> MsgCrypt:
    return MsgCrypt(vector["token"], vector["encoding_aes_key"], _receive_id(vector))


def _expected_msg(vector: dict[str, Any]) -> str:
    return vector["decrypted_msg"] if "decrypted_msg" in vector else vector["plaintext"]


def _aes(encoding_aes_key: str, data: bytes, *, decrypt: bool) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _ciphertext(plain: bytes, encoding_aes_key: str = KEY) -> str:
    """Encrypt an already padded block, so tests can hand-craft bad padding or lengths."""
    return base64.b64encode(_aes(encoding_aes_key, plain, decrypt=False)).decode()


def _block(msg: bytes, receive_id: bytes = b"", *, length: int | None = None) -> bytes:
    size = len(msg) if length is None else length
    return b"R" * 16 + struct.pack(">I", size) + msg + receive_id


# --- the vector file itself -------------------------------------------------------------------


def test_the_vector_file_has_every_published_set() -> None:
    # Guards the parametrized tests against a truncated file silently testing less.
    assert len(VECTORS["vectors"]) == 16
    assert len(NEGATIVE) == 3
    assert [v["id"] for v in VECTORS["synthetic_vectors"]] == ["synthetic-add-external-contact"]
    assert all(v["verified"] for v in POSITIVE + NEGATIVE)
    assert len(SIGNED) == 15
    assert len(DECRYPTABLE) == 13
    assert len(DETERMINISTIC) == 4


# --- signatures -------------------------------------------------------------------------------


@_params(SIGNED)
def test_signature_matches_the_vector(vector: dict[str, Any]) -> None:
    signature = compute_signature(
        vector["token"], vector["timestamp"], vector["nonce"], vector["encrypt"]
    )
    assert signature == vector["msg_signature"]
    # check_signature needs no key material beyond the token: any valid key will do.
    crypt = MsgCrypt(vector["token"], vector.get("encoding_aes_key", KEY), "")
    crypt.check_signature(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], vector["encrypt"]
    )


def test_signature_sorts_the_four_strings() -> None:
    assert (
        compute_signature("b", "d", "a", "c")
        == hashlib.sha1(b"abcd", usedforsecurity=False).hexdigest()
    )


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "5C45FF5E21C57E6AD56BAC8758B79B1D9AC89FD3",  # upper case: WeCom always sends lower
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd",
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3 ",
        "é" * 40,  # non-ASCII must not crash compare_digest
    ],
)
def test_a_signature_that_is_not_exactly_right_is_refused(signature: str) -> None:
    vector = URL_CHECKS[0]
    with pytest.raises(SignatureError) as info:
        _crypt(vector).check_signature(
            signature, vector["timestamp"], vector["nonce"], vector["encrypt"]
        )
    assert info.value.code == -40001


# --- decryption -------------------------------------------------------------------------------


@_params(DECRYPTABLE)
def test_decryption_recovers_message_receive_id_and_layout(vector: dict[str, Any]) -> None:
    crypt = _crypt(vector)
    decrypted = crypt.decrypt_raw(vector["encrypt"])

    assert decrypted.message == _expected_msg(vector)
    assert crypt.decrypt(vector["encrypt"]) == _expected_msg(vector)
    if "expected_plaintext" in vector:
        assert decrypted.message == vector["expected_plaintext"]
    for fragment in vector.get("expected_contains", []):
        assert fragment in decrypted.message
    assert decrypted.receive_id == vector.get("decrypted_receiveid", vector.get("receiveid"))
    if "random16_hex" in vector:
        assert decrypted.random16.hex() == vector["random16_hex"]
    else:
        assert decrypted.random16 == vector["random16"].encode()
    # Independently: the raw AES output ends in the advertised pad, uniform and 1..32 long.
    raw = _aes(vector["encoding_aes_key"], base64.b64decode(vector["encrypt"]), decrypt=True)
    pad = raw[-1]
    assert raw[-pad:] == bytes([pad]) * pad
    assert pad == vector.get("pkcs7_pad_len", pad)
    msg = decrypted.message.encode()
    assert raw[:16] == decrypted.random16
    assert raw[16:-pad] == struct.pack(">I", len(msg)) + msg + decrypted.receive_id.encode()


@_params(DECRYPTABLE)
def test_reencryption_with_the_recovered_prefix_is_byte_exact(vector: dict[str, Any]) -> None:
    crypt = _crypt(vector)
    decrypted = crypt.decrypt_raw(vector["encrypt"])
    again = MsgCrypt(vector["token"], vector["encoding_aes_key"], decrypted.receive_id)
    assert again.encrypt(decrypted.message, random16=decrypted.random16) == vector["encrypt"]


@_params(URL_CHECKS)
def test_url_verification_returns_the_echo_plaintext(vector: dict[str, Any]) -> None:
    echo = _crypt(vector).verify_url(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], vector["encrypt"]
    )
    assert echo == vector["decrypted_msg"]


@_params(ENVELOPES)
@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "str"])
def test_xml_envelopes_verify_and_decrypt(vector: dict[str, Any], as_bytes: bool) -> None:
    body = vector["envelope_xml"].encode() if as_bytes else vector["envelope_xml"]
    msg = _crypt(vector).decrypt_message(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], body
    )
    assert msg == _expected_msg(vector)


@_params(JSON_POSTS)
def test_json_envelopes_verify_and_decrypt(vector: dict[str, Any]) -> None:
    # tousername is not part of the crypto: tencent-wecom-post-json's inner message even names
    # another corp than its receive id, and still checks out.
    envelope = {"tousername": "someone-else", "encrypt": vector["encrypt"], "agentid": "218"}
    msg = _crypt(vector).decrypt_message(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], json.dumps(envelope)
    )
    assert msg == vector["decrypted_msg"]


# --- deterministic encryption -----------------------------------------------------------------


@_params(DETERMINISTIC)
def test_encryption_with_a_fixed_prefix_matches_the_vector(vector: dict[str, Any]) -> None:
    crypt = MsgCrypt(vector["token"], vector["encoding_aes_key"], vector["receiveid"])
    encrypt = crypt.encrypt(vector["plaintext"], random16=vector["random16"].encode())
    assert encrypt == vector["encrypt"]
    if "msg_signature" in vector:
        assert (
            compute_signature(vector["token"], vector["timestamp"], vector["nonce"], encrypt)
            == vector["msg_signature"]
        )


def test_the_passive_reply_vector_parses_to_its_parts() -> None:
    vector = next(v for v in POSITIVE if "expected_reply_xml" in v)
    assert parse_xml(vector["expected_reply_xml"]) == {
        "Encrypt": vector["encrypt"],
        "MsgSignature": vector["msg_signature"],
        "TimeStamp": vector["timestamp"],
        "Nonce": vector["nonce"],
    }


@_params(ENVELOPES)
def test_encrypt_message_builds_what_wecom_posts(
    vector: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Public vectors give the recovered prefix in hex, deterministic ones as ASCII text.
    if "random16_hex" in vector:
        prefix = bytes.fromhex(vector["random16_hex"])
    else:
        prefix = vector["random16"].encode()
    monkeypatch.setattr("siyu.wecom.crypto.os.urandom", lambda n: prefix)
    crypt = _crypt(vector)
    posted = parse_xml(vector["envelope_xml"])

    body, signature = crypt.encrypt_message(
        _expected_msg(vector),
        timestamp=vector["timestamp"],
        nonce=vector["nonce"],
        to_user=str(posted["ToUserName"]),
        agent_id=str(posted["AgentID"]),
    )

    assert signature == vector["msg_signature"]
    assert parse_xml(body) == posted
    if "\n" not in vector["envelope_xml"]:  # same layout as ours: compare byte for byte
        assert body == vector["envelope_xml"]


def test_encrypt_message_addresses_the_receive_id_by_default() -> None:
    crypt = MsgCrypt("tok", KEY, CORP)
    body, signature = crypt.encrypt_message("<xml><A>1</A></xml>", timestamp="17", nonce="42")
    envelope = parse_xml(body)
    assert envelope["ToUserName"] == CORP
    assert envelope["AgentID"] == ""
    assert signature == compute_signature("tok", "17", "42", str(envelope["Encrypt"]))
    assert crypt.decrypt_message(signature, "17", "42", body) == "<xml><A>1</A></xml>"


@pytest.mark.parametrize("field", ["to_user", "agent_id"])
def test_encrypt_message_refuses_values_that_would_break_the_cdata(field: str) -> None:
    with pytest.raises(ValueError, match="]]>"):
        MsgCrypt("t", KEY, CORP).encrypt_message("x", timestamp="1", nonce="1", **{field: "a]]>"})


@pytest.mark.parametrize("prefix", [b"", b"x" * 15, b"x" * 17])
def test_the_random_prefix_must_be_16_bytes(prefix: bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        MsgCrypt("t", KEY, CORP).encrypt("hi", random16=prefix)


def test_encryption_is_randomized() -> None:
    crypt = MsgCrypt("t", KEY, CORP)
    assert crypt.encrypt("same") != crypt.encrypt("same")


# --- negative vectors -------------------------------------------------------------------------

EXPECTED_FAILURE = {"signature": SignatureError, "receiveid": ReceiveIdError}


@_params(NEGATIVE)
def test_negative_vectors_fail_the_named_check(vector: dict[str, Any]) -> None:
    error = EXPECTED_FAILURE[vector["expect_fail"]]  # a new kind of failure needs a new entry
    crypt = MsgCrypt(
        vector["token"], vector.get("encoding_aes_key", KEY), vector.get("receiveid", "")
    )
    with pytest.raises(error) as info:
        crypt.verify_url(
            vector["msg_signature"], vector["timestamp"], vector["nonce"], vector["encrypt"]
        )
    assert type(info.value) is error
    if error is ReceiveIdError:
        # The message itself is fine: only the configured receive id is wrong.
        assert crypt.decrypt_raw(vector["encrypt"]).receive_id == vector["decrypted_receiveid"]
        with pytest.raises(ReceiveIdError):
            crypt.decrypt(vector["encrypt"])


def test_a_vector_decrypted_for_another_corp_is_refused() -> None:
    # go-workwx's body vector uses the same key as its envelope vector but another corp id.
    body = next(v for v in POSITIVE if v["id"] == "go-workwx-signature-body")
    envelope = next(v for v in POSITIVE if v["id"] == "go-workwx-envelope")
    crypt = MsgCrypt(body["token"], body["encoding_aes_key"], envelope["receiveid"])
    with pytest.raises(ReceiveIdError) as info:
        crypt.decrypt(body["encrypt"])
    assert info.value.code == -40005


# --- padding and layout edges -----------------------------------------------------------------


@pytest.mark.parametrize("pad", range(1, 33))
def test_every_pad_length_from_1_to_32_round_trips(pad: int) -> None:
    crypt = MsgCrypt("t", KEY, CORP)
    overhead = 16 + 4 + len(CORP)
    message = "m" * ((32 - pad - overhead) % 32 + 32)
    encrypted = crypt.encrypt(message)
    raw = _aes(KEY, base64.b64decode(encrypted), decrypt=True)
    assert len(raw) % 32 == 0
    assert raw[-pad:] == bytes([pad]) * pad
    assert len(raw) == overhead + len(message) + pad
    assert crypt.decrypt(encrypted) == message


def test_an_aligned_plaintext_gets_a_whole_block_of_padding() -> None:
    crypt = MsgCrypt("t", KEY, CORP)
    message = "x" * (64 - 16 - 4 - len(CORP))  # exactly two blocks before padding
    raw = _aes(KEY, base64.b64decode(crypt.encrypt(message)), decrypt=True)
    assert len(raw) == 96
    assert raw[64:] == bytes([32]) * 32


@pytest.mark.parametrize(
    "pad",
    [
        bytes(32),  # pad value 0
        bytes([33]) * 32,  # longer than WeCom's block
        bytes([255]) * 32,
        bytes([5]) * 3 + bytes([4]) + bytes([5]),  # last byte 5, but not five 5s
        bytes([32]) * 31 + bytes([32 - 1]) + bytes([32]),  # not uniform over a full block
    ],
    ids=["zero", "33", "255", "non-uniform", "non-uniform-full-block"],
)
def test_bad_padding_is_refused(pad: bytes) -> None:
    body = _block(b"abcd")
    plain = body + b"\x00" * ((-len(body) - len(pad)) % 32) + pad
    with pytest.raises(IllegalBufferError) as info:
        MsgCrypt("t", KEY, "").decrypt(_ciphertext(plain))
    assert info.value.code == -40008


def test_a_pad_covering_the_whole_plaintext_is_refused() -> None:
    with pytest.raises(IllegalBufferError):
        MsgCrypt("t", KEY, "").decrypt(_ciphertext(bytes([32]) * 32))


def test_a_length_field_beyond_the_data_is_refused() -> None:
    body = _block(b"abcd", length=4096)
    plain = body + bytes([32 - len(body)]) * (32 - len(body))
    with pytest.raises(IllegalBufferError, match="length field 4096"):
        MsgCrypt("t", KEY, "").decrypt(_ciphertext(plain))


def test_a_short_length_field_leaves_a_receive_id_that_does_not_match() -> None:
    body = _block(b"abcd", CORP.encode(), length=2)
    plain = body + bytes([64 - len(body)]) * (64 - len(body))
    with pytest.raises(ReceiveIdError):
        MsgCrypt("t", KEY, CORP).decrypt(_ciphertext(plain))


def test_a_message_that_is_not_utf8_is_a_decrypt_error() -> None:
    body = _block(b"\xff\xfe")
    plain = body + bytes([32 - len(body)]) * (32 - len(body))
    with pytest.raises(DecryptError) as info:
        MsgCrypt("t", KEY, "").decrypt(_ciphertext(plain))
    assert type(info.value) is DecryptError
    assert info.value.code == -40007


@pytest.mark.parametrize("size", [0, 16, 48, 80])
def test_ciphertext_not_made_of_32_byte_blocks_is_refused(size: int) -> None:
    ciphertext = base64.b64encode(bytes(size)).decode()
    with pytest.raises(IllegalBufferError, match="32-byte blocks"):
        MsgCrypt("t", KEY, "").decrypt(ciphertext)


def test_padding_to_16_byte_blocks_is_refused() -> None:
    # Valid for AES and for Tencent's sample (pad 8 is in 1..32), but WeCom pads to 32.
    body = _block(b"a" * 20)  # 40 bytes
    with pytest.raises(IllegalBufferError, match="32-byte blocks"):
        MsgCrypt("t", KEY, "").decrypt(_ciphertext(body + bytes([8]) * 8))


@pytest.mark.parametrize(
    "junk", ["not base64!!", "abc", "YWJj\n", "ab==cd", "QUJD REVG", "é" * 44, "-_-_"]
)
def test_text_that_is_not_standard_base64_is_refused(junk: str) -> None:
    with pytest.raises(Base64Error) as info:
        MsgCrypt("t", KEY, "").decrypt(junk)
    assert info.value.code == -40010


def test_a_wrong_key_cannot_decrypt() -> None:
    message = MsgCrypt("t", KEY, CORP).encrypt("hello", random16=b"0123456789abcdef")
    with pytest.raises(DecryptError):
        MsgCrypt("t", OTHER_KEY, CORP).decrypt(message)


def test_the_wrong_receive_id_is_refused_and_the_empty_one_works() -> None:
    encrypted = MsgCrypt("t", KEY, CORP).encrypt("hello")
    with pytest.raises(ReceiveIdError, match=CORP):
        MsgCrypt("t", KEY, "ww_other").decrypt(encrypted)
    personal = MsgCrypt("t", KEY, "")  # personal-subject third-party apps have no receive id
    assert personal.decrypt(personal.encrypt("hello")) == "hello"
    with pytest.raises(ReceiveIdError):
        personal.decrypt(encrypted)


@pytest.mark.parametrize("text", ["", "你好, WeCom", "line\n", "x" * 100_000])
def test_any_text_round_trips(text: str) -> None:
    crypt = MsgCrypt("t", KEY, CORP)
    assert crypt.decrypt(crypt.encrypt(text)) == text


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", KEY[:42], KEY + "A", KEY[:42] + "=", KEY[:42] + "!", KEY + "\n", KEY[:42] + "é", "-" * 43],
)
def test_keys_that_are_not_43_base64_characters_are_refused(key: str) -> None:
    with pytest.raises(AesKeyError) as info:
        MsgCrypt("t", key, "")
    assert info.value.code == -40004


def test_keys_may_use_the_whole_base64_alphabet() -> None:
    crypt = MsgCrypt("t", "+/" * 21 + "A", CORP)
    assert crypt.decrypt(crypt.encrypt("ok")) == "ok"


# --- envelopes and XML ------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
    "<xml><Encrypt>&lol4;</Encrypt></xml>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<xml><Encrypt>&e;</Encrypt></xml>"
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'
    "<xml><Encrypt>x</Encrypt></xml>"
)
UNSAFE_XML = [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, "<!DOCTYPE xml><xml/>"]


@pytest.mark.parametrize("body", UNSAFE_XML, ids=["bomb", "external", "parameter", "doctype"])
def test_dtds_and_entities_are_refused(body: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_xml(body)
    assert info.value.code == -40002
    with pytest.raises(ParseError):
        MsgCrypt("t", KEY, "").decrypt_message("0" * 40, "1", "1", body.encode())


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<xml><Encrypt>unclosed",
        "<xml></xml>",
        "<xml><Encrypt></Encrypt></xml>",
        "<xml><Encrypt><A>nested</A></Encrypt></xml>",
        "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        b"<xml><Encrypt>\xff</Encrypt></xml>",
        b'<?xml version="1.0" encoding="GBK"?><xml><Encrypt>\xd6\xd0</Encrypt></xml>',
        "{}",
        '{"Encrypt": "abc"}',
        '{"encrypt": 1}',
        "{not json",
        b'{"encrypt": "\xff"}',
        "[" * 100_000,
        " " + "[" * 1000 + "]" * 1000,
        "{" + '"a":[' * 50_000 + "]" * 50_000 + "}",
    ],
    ids=[
        "empty",
        "unclosed",
        "no-encrypt",
        "empty-encrypt",
        "nested-encrypt",
        "two-encrypts",
        "bad-utf8-xml",
        "gbk-xml",
        "empty-json",
        "json-wrong-case",
        "json-number",
        "bad-json",
        "bad-utf8-json",
        "deep-brackets",
        "json-array",
        "deep-json",
    ],
)
def test_malformed_envelopes_are_parse_errors(body: str | bytes) -> None:
    with pytest.raises(ParseError):
        MsgCrypt("t", KEY, "").decrypt_message("0" * 40, "1", "1", body)


def test_the_envelope_is_parsed_before_the_signature_is_checked_and_the_data_after() -> None:
    crypt = MsgCrypt("t", KEY, CORP)
    body, signature = crypt.encrypt_message("hi", timestamp="1", nonce="2")
    with pytest.raises(SignatureError):
        crypt.decrypt_message(signature, "1", "3", body)
    # Garbage under a wrong signature never reaches the padding check (no padding oracle).
    forged = "<xml><Encrypt>" + base64.b64encode(bytes(64)).decode() + "</Encrypt></xml>"
    with pytest.raises(SignatureError):
        crypt.decrypt_message(signature, "1", "2", forged)


def test_oversized_bodies_are_refused() -> None:
    crypt = MsgCrypt("t", KEY, "")
    big_xml = "<xml><Encrypt>" + "A" * 256 * 1024 + "</Encrypt></xml>"
    big_json = json.dumps({"encrypt": "A" * 256 * 1024})
    for body in (big_xml, big_xml.encode(), big_json, big_json.encode()):
        with pytest.raises(ParseError, match="too large|larger than"):
            crypt.decrypt_message("0" * 40, "1", "1", body)


def test_parse_xml_counts_bytes_not_characters() -> None:
    text = "<xml><A>" + "你" * 100 + "</A></xml>"  # 118 characters, 318 bytes
    assert parse_xml(text, max_bytes=318) == {"A": "你" * 100}
    with pytest.raises(ParseError):
        parse_xml(text, max_bytes=317)
    with pytest.raises(ParseError):
        parse_xml(text.encode(), max_bytes=317)


def test_parse_xml_refuses_deep_nesting() -> None:
    node: object = parse_xml("<a>" * 32 + "x" + "</a>" * 32)
    for _ in range(31):
        assert isinstance(node, dict)
        node = node["a"]
    assert node == "x"
    with pytest.raises(ParseError, match="deeper"):
        parse_xml("<a>" * 33 + "</a>" * 33)
    with pytest.raises(ParseError, match="deeper"):  # far past Python's recursion limit
        parse_xml("<a>" * 10_000 + "</a>" * 10_000)


def test_parse_xml_reads_a_wecom_event() -> None:
    vector = next(v for v in POSITIVE if v["id"] == "synthetic-add-external-contact")
    assert parse_xml(vector["plaintext"]) == {
        "ToUserName": "wx5823bf96d3bd56c7",
        "FromUserName": "sys",
        "CreateTime": "1403610513",
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "zhangsan",
        "ExternalUserID": "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
        "State": "teststate",
        "WelcomeCode": "WELCOMECODE",
    }


def test_parse_xml_nests_and_lists_repeated_children() -> None:
    data = parse_xml(
        "<xml>\n  <ChatId><![CDATA[wr1]]></ChatId>\n  <Empty></Empty><Blank/>"
        "<MemChangeList><Item>a</Item><Item><![CDATA[b]]></Item><Item/></MemChangeList>"
        "<One><Item>only</Item></One><Attr x='1'>v</Attr></xml>"
    )
    assert data == {
        "ChatId": "wr1",
        "Empty": "",
        "Blank": "",
        "MemChangeList": {"Item": ["a", "b", ""]},
        "One": {"Item": "only"},  # a single child stays a plain value
        "Attr": "v",
    }


def test_parse_xml_of_a_childless_root_is_empty() -> None:
    assert parse_xml("<xml>text</xml>") == {}


def test_errors_render_code_reason_and_detail() -> None:
    error = SignatureError("details here")
    assert str(error) == "signature mismatch (-40001): details here"
    assert error.detail == "details here"
    assert isinstance(error, CryptoError)
    assert issubclass(IllegalBufferError, DecryptError)
    assert issubclass(Base64Error, DecryptError)
