"""``siyu wecom decrypt|encrypt``: in-process through call_command, and as a real process."""

import json
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.core.management import CommandError, call_command

from siyu.wecom.crypto import MsgCrypt, compute_signature, parse_xml

REPO = Path(__file__).resolve().parents[3]
VECTORS_PATH = REPO.parent / "shared" / "wecom" / "vectors.json"
if not VECTORS_PATH.is_file():
    pytest.fail(f"WeCom test vectors not found at {VECTORS_PATH}", pytrace=False)
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]

URL_CHECKS = [v for v in VECTORS if v["kind"] == "url_verification"]
ENVELOPES = [v for v in VECTORS if "envelope_xml" in v]
JSON_POSTS = [v for v in VECTORS if v["kind"] == "post_decrypt_json"]
ECHO = next(v for v in VECTORS if v["id"] == "tencent-classic-verifyurl")
POST = next(v for v in VECTORS if v["id"] == "tencent-wecom-post-xml")  # its message is Chinese
OTHER_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def _settings(vector: dict[str, Any], **override: str) -> list[str]:
    values = {
        "token": vector["token"],
        "aes-key": vector["encoding_aes_key"],
        "receive-id": vector["receiveid"],
    } | override
    return [arg for name, value in values.items() for arg in (f"--{name}", value)]


def _decrypt_args(vector: dict[str, Any], **override: str) -> list[str]:
    values = {
        "msg-signature": vector["msg_signature"],
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
    }
    settings = {k: override.pop(k) for k in ("token", "aes-key", "receive-id") if k in override}
    values |= override
    query = [arg for name, value in values.items() for arg in (f"--{name}", value)]
    return ["decrypt", *_settings(vector, **settings), *query]


def _call(*args: str) -> str:
    out = StringIO()
    call_command("wecom", *args, stdout=out)
    return out.getvalue()


def _run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "siyu.config.test_settings", "PYTHONUTF8": "1"}
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "siyu", "wecom", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


# --- decrypt, in process ----------------------------------------------------------------------


@pytest.mark.parametrize("vector", URL_CHECKS, ids=_ids(URL_CHECKS))
def test_decrypt_prints_the_echo_plaintext(vector: dict[str, Any]) -> None:
    out = _call(*_decrypt_args(vector, echostr=vector["encrypt"]))
    assert out == vector["decrypted_msg"] + "\n"


@pytest.mark.parametrize("vector", ENVELOPES, ids=_ids(ENVELOPES))
def test_decrypt_prints_the_message_of_an_xml_body(vector: dict[str, Any], tmp_path: Path) -> None:
    body = tmp_path / "body.xml"
    body.write_bytes(vector["envelope_xml"].encode())
    out = _call(*_decrypt_args(vector, **{"xml-file": str(body)}))
    assert out == vector["decrypted_msg"] + "\n"


@pytest.mark.parametrize("vector", JSON_POSTS, ids=_ids(JSON_POSTS))
def test_decrypt_reads_json_bodies_too(vector: dict[str, Any], tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"tousername": "x", "encrypt": vector["encrypt"], "agentid": ""}))
    out = _call(*_decrypt_args(vector, **{"xml-file": str(body)}))
    assert out == vector["decrypted_msg"] + "\n"


def test_decrypt_adds_exactly_one_newline(tmp_path: Path) -> None:
    crypt = MsgCrypt("tok", ECHO["encoding_aes_key"], "ww1")
    body, signature = crypt.encrypt_message("two lines\n\n", timestamp="1", nonce="2")
    (tmp_path / "body.xml").write_text(body)
    args = ["--token", "tok", "--aes-key", ECHO["encoding_aes_key"], "--receive-id", "ww1"]
    out = _call(
        "decrypt",
        *args,
        *("--msg-signature", signature, "--timestamp", "1", "--nonce", "2"),
        *("--xml-file", str(tmp_path / "body.xml")),
    )
    assert out == "two lines\n\n\n"


def _echo_with(**override: str) -> list[str]:
    return _decrypt_args(ECHO, **({"echostr": ECHO["encrypt"]} | override))


def _signed_junk(encrypt: str) -> list[str]:
    signature = compute_signature(ECHO["token"], ECHO["timestamp"], ECHO["nonce"], encrypt)
    return _echo_with(echostr=encrypt, **{"msg-signature": signature})


ERRORS = {
    "wrong-signature": (
        _echo_with(**{"msg-signature": "0" * 40}),
        1,
        "signature mismatch (-40001): msg_signature is not sha1 of token, timestamp, nonce and "
        "ciphertext",
    ),
    "wrong-token": (_echo_with(token="other"), 1, "signature mismatch (-40001): "),
    "wrong-key": (
        _echo_with(**{"aes-key": OTHER_KEY}),
        1,
        "cannot decrypt (bad length or padding: wrong key or corrupt data) (-40008): ",
    ),
    "wrong-receive-id": (
        _echo_with(**{"receive-id": "ww_other"}),
        1,
        "receive id mismatch (-40005): message is for 'wx5823bf96d3bd56c7', not 'ww_other'",
    ),
    "corrupt-base64": (_signed_junk("P9nA*zCzy"), 1, "corrupt data (not base64) (-40010): "),
    "corrupt-length": (
        _signed_junk(ECHO["encrypt"][:64]),  # 48 bytes: not whole 32-byte blocks
        1,
        "cannot decrypt (bad length or padding: wrong key or corrupt data) (-40008): "
        "ciphertext is 48 bytes, not whole 32-byte blocks",
    ),
    "malformed-key": (
        _echo_with(**{"aes-key": "short"}),
        2,
        "invalid EncodingAESKey (-40004): EncodingAESKey must be 43 characters of the base64 "
        "alphabet",
    ),
}


@pytest.mark.parametrize(("args", "status", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_decrypt_errors_name_the_check_that_failed(
    args: list[str], status: int, message: str
) -> None:
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("wecom", *args, stdout=out)
    assert str(info.value).startswith(message)
    assert info.value.returncode == status
    assert out.getvalue() == ""


def test_decrypt_of_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.xml"
    with pytest.raises(CommandError, match="cannot read .*missing.xml") as info:
        _call(*_decrypt_args(POST, **{"xml-file": str(missing)}))
    assert info.value.returncode == 2


def test_decrypt_of_a_malformed_body_is_a_parse_error(tmp_path: Path) -> None:
    body = tmp_path / "body.xml"
    body.write_text('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>')
    with pytest.raises(CommandError, match=r"^malformed message \(-40002\)") as info:
        _call(*_decrypt_args(POST, **{"xml-file": str(body)}))
    assert info.value.returncode == 1


def test_decrypt_needs_exactly_one_source() -> None:
    with pytest.raises(CommandError, match="one of the arguments --echostr --xml-file"):
        _call(*_decrypt_args(ECHO))


# --- encrypt, in process ----------------------------------------------------------------------


def test_encrypt_prints_the_query_and_the_body_that_decrypt_accepts(tmp_path: Path) -> None:
    settings = _settings(POST)
    out = _call(
        "encrypt", *settings, "--timestamp", "1700000000", "--nonce", "42", "--text", "你好"
    )

    query, body, end = out.split("\n")
    params = parse_qs(query, strict_parsing=True)
    assert params.keys() == {"msg_signature", "timestamp", "nonce"}
    assert params["timestamp"] == ["1700000000"]
    assert params["nonce"] == ["42"]
    assert end == ""
    envelope = parse_xml(body)
    assert envelope["ToUserName"] == POST["receiveid"]
    signature = params["msg_signature"][0]
    assert signature == compute_signature(
        POST["token"], "1700000000", "42", str(envelope["Encrypt"])
    )

    (tmp_path / "body.xml").write_text(body)
    decrypted = _call(
        "decrypt",
        *settings,
        *("--msg-signature", signature, "--timestamp", "1700000000", "--nonce", "42"),
        *("--xml-file", str(tmp_path / "body.xml")),
    )
    assert decrypted == "你好\n"


def test_encrypt_json_has_everything_needed_to_post(tmp_path: Path) -> None:
    message = tmp_path / "event.xml"
    message.write_text(POST["decrypted_msg"] + "\n")  # a file is taken verbatim
    out = _call("encrypt", *_settings(POST), "--xml-file", str(message), "--json")

    payload = json.loads(out)
    assert payload.keys() == {"msg_signature", "timestamp", "nonce", "encrypt", "body"}
    assert parse_xml(payload["body"])["Encrypt"] == payload["encrypt"]
    assert abs(int(payload["timestamp"]) - time.time()) < 60
    assert payload["nonce"].isdigit()
    assert len(payload["nonce"]) == 10
    crypt = MsgCrypt(POST["token"], POST["encoding_aes_key"], POST["receiveid"])
    plaintext = crypt.decrypt_message(
        payload["msg_signature"], payload["timestamp"], payload["nonce"], payload["body"]
    )
    assert plaintext == POST["decrypted_msg"] + "\n"


def test_encrypt_with_a_malformed_key_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match=r"^invalid EncodingAESKey \(-40004\)") as info:
        _call("encrypt", *_settings(POST, **{"aes-key": "x" * 44}), "--text", "hi")
    assert info.value.returncode == 2


# --- as a real process ------------------------------------------------------------------------


def test_the_siyu_command_decrypts_an_echostr() -> None:
    result = _run(*_decrypt_args(ECHO, echostr=ECHO["encrypt"]))
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"1616140317555161061\n"


def test_the_siyu_command_decrypts_a_body_from_stdin() -> None:
    result = _run(*_decrypt_args(POST, **{"xml-file": "-"}), stdin=POST["envelope_xml"].encode())
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == POST["decrypted_msg"].encode() + b"\n"


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ERRORS[name]
        for name in ("wrong-signature", "wrong-key", "wrong-receive-id", "corrupt-base64")
    ]
    + [ERRORS["malformed-key"]],
    ids=["wrong-signature", "wrong-key", "wrong-receive-id", "corrupt-data", "malformed-key"],
)
def test_the_siyu_command_reports_errors_on_one_line(
    args: list[str], status: int, message: str
) -> None:
    result = _run(*args)
    assert result.returncode == status
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"CommandError: {message}")


def test_the_siyu_command_reports_an_unreadable_file(tmp_path: Path) -> None:
    result = _run(*_decrypt_args(POST, **{"xml-file": str(tmp_path / "missing.xml")}))
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().startswith("CommandError: cannot read ")
    assert len(result.stderr.splitlines()) == 1


def test_the_siyu_command_round_trips_encrypt_and_decrypt() -> None:
    message = "<xml><Content><![CDATA[你好]]></Content></xml>\n"
    encrypted = _run(
        "encrypt", *_settings(POST), "--xml-file", "-", "--json", stdin=message.encode()
    )
    assert (encrypted.returncode, encrypted.stderr) == (0, b"")
    payload = json.loads(encrypted.stdout)

    decrypted = _run(
        "decrypt",
        *_settings(POST),
        *("--msg-signature", payload["msg_signature"]),
        *("--timestamp", payload["timestamp"], "--nonce", payload["nonce"]),
        *("--xml-file", "-"),
        stdin=payload["body"].encode(),
    )
    assert (decrypted.returncode, decrypted.stderr) == (0, b"")
    assert decrypted.stdout == message.encode() + b"\n"
