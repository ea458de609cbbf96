"""WeCom's callback cryptography (WXBizMsgCrypt), written from the specification.

Signature: SHA-1 over the sorted concatenation of token, timestamp, nonce and the ciphertext.
Ciphertext: AES-256-CBC (key = base64(EncodingAESKey + "="), IV = key[:16]) over
``random16 || uint32_be(len(msg)) || msg || receive_id``, padded PKCS#7-style to a multiple of
**32** bytes (WeCom's block, not AES's 16), then base64.

We are stricter than Tencent's sample, which trusts the last byte as the pad length: the base64
alphabet, the 32-byte block size, every pad byte, the length field and the receive id are all
checked, and signatures are compared in constant time. Callers must check the signature before
decrypting (``verify_url`` and ``decrypt_message`` do): it covers the ciphertext, so a forger
never reaches the padding check and cannot use it as a padding oracle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import struct
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

BLOCK_SIZE = 32
MAX_XML_BYTES = 256 * 1024
# WeCom's messages nest three levels at most; the cap keeps parse_xml's recursion far from
# Python's limit on hostile input.
MAX_XML_DEPTH = 32
_KEY_RE = re.compile(r"[A-Za-z0-9+/]{43}")
_LENGTH = struct.Struct(">I")


class CryptoError(Exception):
    """Base of WeCom crypto failures, never raised itself.

    ``code`` is the official sample's negative error code, ``reason`` a short label for it and
    ``detail`` says what exactly failed.
    """

    code: ClassVar[int]
    reason: ClassVar[str]

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason} ({self.code}): {self.detail}"


class SignatureError(CryptoError):
    code = -40001
    reason = "signature mismatch"


class ParseError(CryptoError):
    code = -40002
    reason = "malformed message"


class AesKeyError(CryptoError):
    code = -40004
    reason = "invalid EncodingAESKey"


class ReceiveIdError(CryptoError):
    code = -40005
    reason = "receive id mismatch"


class DecryptError(CryptoError):
    code = -40007
    reason = "cannot decrypt (wrong key or corrupt data)"


class IllegalBufferError(DecryptError):
    """Bad ciphertext length, padding or length field: almost always a wrong key."""

    code = -40008
    reason = "cannot decrypt (bad length or padding: wrong key or corrupt data)"


class Base64Error(DecryptError):
    code = -40010
    reason = "corrupt data (not base64)"


class Decrypted(NamedTuple):
    random16: bytes
    message: str
    receive_id: str


def compute_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    # Code-point order equals UTF-8 byte order, so this matches the byte-wise sort of the
    # official samples (PHP SORT_STRING) even for non-ASCII input.
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 (WeCom's protocol, not ours)


def _pad(data: bytes) -> bytes:
    amount = BLOCK_SIZE - len(data) % BLOCK_SIZE  # 1..32: a whole block when already aligned
    return data + bytes([amount]) * amount


def _unpad(data: bytes) -> bytes:
    amount = data[-1]
    if not 1 <= amount <= BLOCK_SIZE or data[-amount:] != bytes([amount]) * amount:
        raise IllegalBufferError("invalid PKCS#7 padding")
    return data[:-amount]


class MsgCrypt:
    """One callback configuration: Token, EncodingAESKey and the receive id.

    The receive id is the corp id for a corp's own apps, the suite id for third-party
    instruction callbacks and "" for personal-subject third-party apps.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not _KEY_RE.fullmatch(encoding_aes_key):
            raise AesKeyError("EncodingAESKey must be 43 characters of the base64 alphabet")
        # 43 characters carry 258 bits: with "=" that is always exactly 32 bytes.
        self._key = base64.b64decode(encoding_aes_key + "=")
        self.token = token
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = compute_signature(self.token, timestamp, nonce, encrypt)
        # Bytes, because compare_digest refuses non-ASCII str and the value is attacker-chosen.
        if not hmac.compare_digest(expected.encode(), msg_signature.encode("utf-8", "replace")):
            raise SignatureError(
                "msg_signature is not sha1 of token, timestamp, nonce and ciphertext"
            )

    def encrypt(self, plaintext: str, *, random16: bytes | None = None) -> str:
        """Encrypt ``plaintext``; ``random16`` fixes the random prefix (tests and vectors only)."""
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise ValueError("random16 must be exactly 16 bytes")
        msg = plaintext.encode()
        block = prefix + _LENGTH.pack(len(msg)) + msg + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(_pad(block)) + encryptor.finalize()).decode()

    def decrypt_raw(self, encrypt: str) -> Decrypted:
        """Decrypt without checking the receive id, for tools that need to see it."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII str
            raise Base64Error(f"ciphertext is not base64: {exc}") from exc
        if not data or len(data) % BLOCK_SIZE:
            raise IllegalBufferError(f"ciphertext is {len(data)} bytes, not whole 32-byte blocks")
        decryptor = self._cipher().decryptor()
        plain = _unpad(decryptor.update(data) + decryptor.finalize())
        if len(plain) < 20:
            raise IllegalBufferError("plaintext is shorter than the random prefix and length")
        (length,) = _LENGTH.unpack_from(plain, 16)
        if 20 + length > len(plain):
            raise IllegalBufferError(f"length field {length} exceeds the plaintext")
        try:
            msg = plain[20 : 20 + length].decode()
            receive_id = plain[20 + length :].decode()
        except UnicodeDecodeError as exc:
            raise DecryptError("plaintext is not UTF-8") from exc
        return Decrypted(plain[:16], msg, receive_id)

    def decrypt(self, encrypt: str) -> str:
        """Decrypt ``encrypt`` (base64) to the message. Does not check a signature."""
        decrypted = self.decrypt_raw(encrypt)
        if decrypted.receive_id != self.receive_id:  # not secret: no constant-time compare
            raise ReceiveIdError(
                f"message is for {decrypted.receive_id!r}, not {self.receive_id!r}"
            )
        return decrypted.message

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer WeCom's URL verification: the plaintext to send back as the response body."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr)

    def decrypt_message(
        self, msg_signature: str, timestamp: str, nonce: str, body: bytes | str
    ) -> str:
        """Verify and decrypt a POSTed envelope (XML or JSON); returns the inner message."""
        encrypt = _envelope_encrypt(body)
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def encrypt_message(
        self,
        plaintext: str,
        *,
        timestamp: str,
        nonce: str,
        to_user: str | None = None,
        agent_id: str = "",
    ) -> tuple[str, str]:
        """Build what WeCom POSTs to a callback URL: (envelope XML body, msg_signature).

        ``to_user`` defaults to the receive id, as WeCom's own envelopes do.
        """
        to_user = self.receive_id if to_user is None else to_user
        if "]]>" in to_user or "]]>" in agent_id:
            raise ValueError("to_user and agent_id cannot contain ']]>'")
        encrypt = self.encrypt(plaintext)
        body = (
            f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
        )
        return body, compute_signature(self.token, timestamp, nonce, encrypt)


def _envelope_encrypt(body: bytes | str) -> str:
    """The Encrypt field of an envelope: ``<xml><Encrypt>`` or JSON ``{"encrypt": ...}``."""
    if body.lstrip()[:1] in ("{", b"{"):
        if len(body) > MAX_XML_BYTES:
            raise ParseError("envelope too large")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # ValueError includes UnicodeDecodeError
            raise ParseError(f"envelope is not valid JSON: {exc}") from exc
        value = data.get("encrypt") if isinstance(data, dict) else None
    else:
        value = parse_xml(body).get("Encrypt")
    if not isinstance(value, str) or not value:
        raise ParseError("envelope has no Encrypt field")
    return value


def _to_value(node: Element, depth: int) -> object:
    if depth > MAX_XML_DEPTH:
        raise ParseError(f"XML nested deeper than {MAX_XML_DEPTH} levels")
    if len(node) == 0:
        return node.text or ""
    result: dict[str, object] = {}
    for child in node:
        value = _to_value(child, depth + 1)
        if child.tag not in result:
            result[child.tag] = value
            continue
        previous = result[child.tag]
        if isinstance(previous, list):
            previous.append(value)
        else:
            result[child.tag] = [previous, value]
    return result


def parse_xml(text: str | bytes, *, max_bytes: int = MAX_XML_BYTES) -> dict[str, object]:
    """Parse WeCom XML into a dict of the root's children.

    Leaves become their text (CDATA unwrapped, "" when empty), elements with children become
    dicts, and a tag that repeats becomes a list (a single ``<Item>`` stays a plain value).
    Attributes are ignored. DTDs, entities, deep nesting and input over ``max_bytes`` raise
    ParseError.
    """
    # A str is never shorter in UTF-8 than in characters: reject huge ones before encoding.
    if len(text) > max_bytes or (isinstance(text, str) and len(text.encode()) > max_bytes):
        raise ParseError(f"XML larger than {max_bytes} bytes")
    try:
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SafeET.ParseError, ValueError, LookupError) as exc:
        # ValueError/LookupError: declared encodings expat cannot decode.
        raise ParseError(f"malformed or unsafe XML: {type(exc).__name__}: {exc}") from exc
    value = _to_value(root, 1)
    return value if isinstance(value, dict) else {}
