"""The payment provider interface and its WeChat Pay (API v3) implementation.

``PaymentProvider`` is what the order services need from any provider: create a payment
(prepay) and return what the page needs to pay it, verify an asynchronous notification, close
an unpaid payment, refund. ``WeChatPayProvider`` speaks the v3 JSON API to
``PaymentAccount.api_base_url`` (the sandbox's pay emulator in tests and the demo).

Signatures: real WeChat Pay signs requests with the merchant's RSA key and notifications with
the platform certificate. The sandbox and this provider use the same v3 signing strings but
HMAC-SHA256 keyed with the API v3 key (signature type ``WECHATPAY2-HMAC-SHA256``), so no
certificates are needed; the notification resource is AEAD_AES_256_GCM-encrypted with the
API v3 key exactly as in production. Swapping in RSA means changing ``sign``/``signature_ok``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

from siyu.core.errors import InvalidInput, SiyuError
from siyu.core.http import http_client

if TYPE_CHECKING:
    from collections.abc import Mapping

    from siyu.shop.models import Payment, PaymentAccount, Refund

SIGNATURE_TYPE = "WECHATPAY2-HMAC-SHA256"
TIMEOUT = 10.0


class ProviderError(SiyuError):
    """The provider refused (``transient`` False) or could not be reached / failed on its side
    (True: the outcome is unknown, ask again later with the same request number)."""

    code = "payment_provider_error"
    status = 502

    def __init__(self, message: str, *, code: str | None = None, transient: bool = False) -> None:
        super().__init__(message, code=code)
        self.transient = transient


@dataclass(frozen=True)
class PaymentNotice:
    """A verified, decrypted payment result."""

    out_trade_no: str
    transaction_id: str
    trade_state: str
    amount_fen: int
    paid_at: datetime


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    status: str  # SUCCESS | PROCESSING | ABNORMAL | CLOSED


class PaymentProvider(Protocol):
    def create_payment(
        self, *, payment: Payment, description: str, openid: str, notify_url: str
    ) -> dict[str, str]: ...

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> PaymentNotice: ...

    def close(self, *, payment: Payment) -> None: ...

    def refund(self, *, payment: Payment, refund: Refund) -> RefundResult: ...


# --- v3 crypto, shared with the sandbox's pay emulator ----------------------------------------


def sign(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(key: str, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, message), signature)


def aead_encrypt(key: str, plaintext: str, *, associated_data: str) -> dict[str, str]:
    nonce = secrets.token_hex(6)  # 12 characters, as WeChat Pay sends
    cipher = AESGCM(key.encode()).encrypt(
        nonce.encode(), plaintext.encode(), associated_data.encode()
    )
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(cipher).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def aead_decrypt(key: str, resource: Mapping[str, Any]) -> str:
    try:
        plain = AESGCM(key.encode()).decrypt(
            str(resource["nonce"]).encode(),
            base64.b64decode(str(resource["ciphertext"])),
            str(resource.get("associated_data", "")).encode(),
        )
    except (InvalidTag, KeyError, ValueError) as exc:
        raise InvalidInput(
            "notification resource cannot be decrypted", code="bad_signature"
        ) from exc
    return plain.decode()


def notification_message(timestamp: str, nonce: str, body: bytes) -> str:
    return f"{timestamp}\n{nonce}\n{body.decode()}\n"


def request_message(method: str, path: str, timestamp: str, nonce: str, body: str) -> str:
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n"


class WeChatPayProvider:
    def __init__(self, account: PaymentAccount) -> None:
        if len(account.api_v3_key) != 32:
            raise InvalidInput("the API v3 key must be 32 characters")
        self.account = account

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        raw = json.dumps(body, ensure_ascii=False) if body is not None else ""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signature = sign(
            self.account.api_v3_key, request_message(method, path, timestamp, nonce, raw)
        )
        authorization = (
            f'{SIGNATURE_TYPE} mchid="{self.account.mchid}",nonce_str="{nonce}",'
            f'timestamp="{timestamp}",signature="{signature}"'
        )
        url = self.account.api_base_url.rstrip("/") + path
        try:
            with http_client(timeout=TIMEOUT) as http:
                return http.request(
                    method,
                    url,
                    content=raw.encode(),
                    headers={"Authorization": authorization, "Content-Type": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise ProviderError(f"payment provider unreachable: {exc}", transient=True) from exc

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        if response.status_code >= 300:
            raise ProviderError(
                f"{data.get('code', response.status_code)}: {data.get('message', 'failed')}",
                code=str(data.get("code") or "payment_provider_error"),
                transient=response.status_code >= 500,
            )
        return data if isinstance(data, dict) else {}

    def create_payment(
        self, *, payment: Payment, description: str, openid: str, notify_url: str
    ) -> dict[str, str]:
        data = self._json(
            self._call(
                "POST",
                "/v3/pay/transactions/jsapi",
                {
                    "appid": self.account.appid,
                    "mchid": self.account.mchid,
                    "description": description,
                    "out_trade_no": payment.out_trade_no,
                    "notify_url": notify_url,
                    "amount": {"total": payment.amount_fen, "currency": "CNY"},
                    "payer": {"openid": openid},
                },
            )
        )
        prepay_id = str(data.get("prepay_id", ""))
        if not prepay_id:
            raise ProviderError("the provider returned no prepay_id")
        # What wx.chooseWXPay / WeixinJSBridge needs (paySign with the same signing scheme).
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        pay_sign = sign(
            self.account.api_v3_key, f"{self.account.appid}\n{timestamp}\n{nonce}\n{package}\n"
        )
        return {
            "prepay_id": prepay_id,
            "appId": self.account.appid,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": SIGNATURE_TYPE,
            "paySign": pay_sign,
            # Only the sandbox has a page where the visitor "pays".
            "pay_url": str(data.get("sandbox_pay_url", "")),
        }

    def verify_notification(self, *, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        lower = {k.lower(): v for k, v in headers.items()}
        timestamp = lower.get("wechatpay-timestamp", "")
        nonce = lower.get("wechatpay-nonce", "")
        signature = lower.get("wechatpay-signature", "")
        if not (timestamp.isdigit() and nonce and signature):
            raise InvalidInput("missing signature headers", code="bad_signature")
        if abs(time.time() - int(timestamp)) > settings.SIYU_SHOP_SIGNATURE_MAX_AGE_SECONDS:
            raise InvalidInput("notification timestamp outside the window", code="stale")
        if not signature_ok(
            self.account.api_v3_key, notification_message(timestamp, nonce, body), signature
        ):
            raise InvalidInput("notification signature does not verify", code="bad_signature")
        try:
            envelope = json.loads(body)
            resource = envelope["resource"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput("malformed notification", code="bad_notification") from exc
        try:
            data = json.loads(aead_decrypt(self.account.api_v3_key, resource))
            if data["mchid"] != self.account.mchid or data["appid"] != self.account.appid:
                raise InvalidInput("notification is for another merchant", code="bad_notification")
            return PaymentNotice(
                out_trade_no=str(data["out_trade_no"]),
                transaction_id=str(data["transaction_id"]),
                trade_state=str(data["trade_state"]),
                amount_fen=int(data["amount"]["total"]),
                paid_at=datetime.fromisoformat(str(data["success_time"])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput("malformed notification", code="bad_notification") from exc

    def close(self, *, payment: Payment) -> None:
        self._json(
            self._call(
                "POST",
                f"/v3/pay/transactions/out-trade-no/{payment.out_trade_no}/close",
                {"mchid": self.account.mchid},
            )
        )

    def refund(self, *, payment: Payment, refund: Refund) -> RefundResult:
        data = self._json(
            self._call(
                "POST",
                "/v3/refund/domestic/refunds",
                {
                    "out_trade_no": payment.out_trade_no,
                    "out_refund_no": refund.out_refund_no,
                    "reason": refund.reason[:80],
                    "amount": {
                        "refund": refund.amount_fen,
                        "total": payment.amount_fen,
                        "currency": "CNY",
                    },
                },
            )
        )
        return RefundResult(
            refund_id=str(data.get("refund_id", "")), status=str(data.get("status"))
        )


def provider_for(account: PaymentAccount) -> PaymentProvider:
    if account.provider != "wechatpay":
        raise InvalidInput(f"unknown payment provider {account.provider!r}")
    return WeChatPayProvider(account)
