"""A WeChat-Pay-like payment emulator (API v3 shapes) for the shop: prepay, a simulated
"customer pays", signed and encrypted asynchronous notifications with WeChat Pay's retry
schedule, close and refunds.

Merchant requests are authenticated and notifications signed with HMAC-SHA256 keyed by the
merchant's API v3 key over the v3 signing strings (``siyu.shop.payments`` explains why); the
notification resource is AEAD_AES_256_GCM-encrypted exactly like WeChat Pay's. Refunds
succeed synchronously (WeChat Pay answers PROCESSING and notifies later).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from siyu.core.http import http_client
from siyu.shop.payments import (
    SIGNATURE_TYPE,
    aead_encrypt,
    notification_message,
    request_message,
    sign,
    signature_ok,
)

logger = logging.getLogger(__name__)

# WeChat Pay re-sends an unanswered notification after these many seconds (15 s … 6 h); the
# emulator scales them so the first interval is its ``retry_delay``.
RETRY_INTERVALS = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800)
TIMEOUT = 5.0
CHINA = timezone(timedelta(hours=8))
AUTH_RE = re.compile(r'(\w+)="([^"]*)"')


class PayError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Merchant:
    mchid: str
    appid: str
    api_v3_key: str


@dataclass
class Transaction:
    mchid: str
    appid: str
    out_trade_no: str
    amount: int
    description: str
    notify_url: str
    openid: str
    prepay_id: str
    state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED | REFUND
    transaction_id: str = ""
    success_time: str = ""
    refunds: dict[str, int] = field(default_factory=dict)  # out_refund_no → fen


@dataclass
class Notification:
    out_trade_no: str
    attempts: int = 0
    status: str = "queued"  # queued | delivered | failed
    history: list[Any] = field(default_factory=list)


def notification_for(
    merchant: Merchant, txn: Transaction, *, amount: int | None = None, timestamp: int | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a TRANSACTION.SUCCESS notification, as WeChat Pay would POST it."""
    resource = {
        "mchid": merchant.mchid,
        "appid": merchant.appid,
        "out_trade_no": txn.out_trade_no,
        "transaction_id": txn.transaction_id,
        "trade_type": "JSAPI",
        "trade_state": txn.state if txn.state != "REFUND" else "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": txn.success_time,
        "payer": {"openid": txn.openid},
        "amount": {
            "total": txn.amount if amount is None else amount,
            "payer_total": txn.amount if amount is None else amount,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    envelope = {
        "id": secrets.token_hex(16),
        "create_time": datetime.now(CHINA).isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            **aead_encrypt(
                merchant.api_v3_key,
                json.dumps(resource, ensure_ascii=False),
                associated_data="transaction",
            ),
        },
    }
    body = json.dumps(envelope, ensure_ascii=False).encode()
    stamp, nonce = str(timestamp or int(time.time())), secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": f"SANDBOX-{merchant.mchid}",
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        "Wechatpay-Signature": sign(merchant.api_v3_key, notification_message(stamp, nonce, body)),
    }
    return headers, body


class PayEmulator:
    def __init__(
        self,
        *,
        base_url: str,
        retry_delay: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        inline: bool = False,
        saved: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``inline``: notify in the paying thread (a single-threaded driver such as the demo's
        replay), not in a thread of its own. ``saved``: where merchants are kept across
        restarts (the world's ``pay_merchants``, saved with its state file)."""
        self.base_url = base_url
        self.inline = inline
        self.retry_delay = retry_delay
        self.lock = threading.Lock()
        self._saved = {} if saved is None else saved
        self.merchants = {k: Merchant(k, **v) for k, v in self._saved.items()}
        self.transactions: dict[str, Transaction] = {}  # out_trade_no → …
        self.prepays: dict[str, str] = {}  # prepay_id → out_trade_no
        self.notifications: list[Notification] = []
        self._in_flight = 0
        self._idle = threading.Condition(self.lock)
        self._closed = False
        self._client = http_client(timeout=TIMEOUT, transport=transport)

    def close(self) -> None:
        self._closed = True
        self._client.close()

    # --- merchant API (/v3/…) -----------------------------------------------------------

    def _authenticate(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> Merchant:
        scheme, _, params = headers.get("authorization", "").partition(" ")
        fields = dict(AUTH_RE.findall(params))
        if scheme != SIGNATURE_TYPE:
            raise PayError(401, "SIGN_ERROR", "unsupported authorization scheme")
        merchant = self.merchants.get(fields.get("mchid", ""))
        if merchant is None:
            raise PayError(401, "SIGN_ERROR", "unknown mchid")
        stamp = fields.get("timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            raise PayError(401, "SIGN_ERROR", "timestamp outside the window")
        message = request_message(method, path, stamp, fields.get("nonce_str", ""), raw.decode())
        if not signature_ok(merchant.api_v3_key, message, fields.get("signature", "")):
            raise PayError(401, "SIGN_ERROR", "signature does not verify")
        return merchant

    def api(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        try:
            merchant = self._authenticate(method, path, headers, raw)
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise PayError(400, "PARAM_ERROR", "invalid JSON") from exc
            if not isinstance(body, dict):
                raise PayError(400, "PARAM_ERROR", "body must be an object")
            with self.lock:
                if path == "/v3/pay/transactions/jsapi" and method == "POST":
                    return 200, self._prepay(merchant, body)
                closing = re.fullmatch(r"/v3/pay/transactions/out-trade-no/([\w-]+)/close", path)
                if closing and method == "POST":
                    self._close(merchant, closing.group(1))
                    return 204, {}
                if path == "/v3/refund/domestic/refunds" and method == "POST":
                    return 200, self._refund(merchant, body)
            raise PayError(404, "NOT_FOUND", f"no such API {method} {path}")
        except PayError as exc:
            return exc.status, {"code": exc.code, "message": exc.message}

    def _prepay(self, merchant: Merchant, body: dict[str, Any]) -> dict[str, Any]:
        try:
            out_trade_no = str(body["out_trade_no"])
            amount = int(body["amount"]["total"])
            notify_url = str(body["notify_url"])
            openid = str(body["payer"]["openid"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PayError(400, "PARAM_ERROR", f"missing or bad field: {exc}") from exc
        if body.get("appid") != merchant.appid or body.get("mchid") != merchant.mchid:
            raise PayError(400, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match")
        if amount <= 0:
            raise PayError(400, "PARAM_ERROR", "amount.total must be positive")
        if not notify_url.startswith(("http://", "https://")):
            raise PayError(400, "PARAM_ERROR", "notify_url must be absolute")
        existing = self.transactions.get(out_trade_no)
        if existing is not None:
            if existing.amount != amount or existing.state != "NOTPAY":
                raise PayError(400, "INVALID_REQUEST", "out_trade_no already used")
            txn = existing
        else:
            txn = Transaction(
                mchid=merchant.mchid,
                appid=merchant.appid,
                out_trade_no=out_trade_no,
                amount=amount,
                description=str(body.get("description", "")),
                notify_url=notify_url,
                openid=openid,
                prepay_id="wx" + secrets.token_hex(14),
            )
            self.transactions[out_trade_no] = txn
            self.prepays[txn.prepay_id] = out_trade_no
        return {
            "prepay_id": txn.prepay_id,
            "sandbox_pay_url": f"{self.base_url}/sandbox/pay/checkout/{txn.prepay_id}",
        }

    def _txn(self, merchant: Merchant, out_trade_no: str) -> Transaction:
        txn = self.transactions.get(out_trade_no)
        if txn is None or txn.mchid != merchant.mchid:
            raise PayError(404, "ORDER_NOT_EXIST", "no such order")
        return txn

    def _close(self, merchant: Merchant, out_trade_no: str) -> None:
        txn = self._txn(merchant, out_trade_no)
        if txn.state in {"SUCCESS", "REFUND"}:
            raise PayError(400, "ORDERPAID", "the order is already paid")
        txn.state = "CLOSED"

    def _refund(self, merchant: Merchant, body: dict[str, Any]) -> dict[str, Any]:
        try:
            txn = self._txn(merchant, str(body["out_trade_no"]))
            out_refund_no = str(body["out_refund_no"])
            refund = int(body["amount"]["refund"])
            total = int(body["amount"]["total"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PayError(400, "PARAM_ERROR", f"missing or bad field: {exc}") from exc
        if txn.state not in {"SUCCESS", "REFUND"}:
            raise PayError(400, "INVALID_REQUEST", "the order is not paid")
        if total != txn.amount:
            raise PayError(400, "INVALID_REQUEST", "amount.total differs from the order")
        if out_refund_no in txn.refunds:
            if txn.refunds[out_refund_no] != refund:
                raise PayError(400, "INVALID_REQUEST", "out_refund_no already used")
        else:
            if refund <= 0 or sum(txn.refunds.values()) + refund > txn.amount:
                raise PayError(400, "NOT_ENOUGH", "refund exceeds the refundable amount")
            txn.refunds[out_refund_no] = refund
            txn.state = "REFUND"
        return {
            "refund_id": f"50{secrets.token_hex(14)}",
            "out_refund_no": out_refund_no,
            "transaction_id": txn.transaction_id,
            "out_trade_no": txn.out_trade_no,
            "status": "SUCCESS",
            "amount": {"refund": refund, "total": total, "currency": "CNY"},
        }

    # --- control: the customer pays, notifications ---------------------------------------

    def add_merchant(self, body: dict[str, Any]) -> dict[str, Any]:
        mchid, appid, key = (str(body.get(k, "")) for k in ("mchid", "appid", "api_v3_key"))
        if not mchid or not appid or len(key) != 32:
            raise PayError(400, "PARAM_ERROR", "mchid, appid and a 32-character api_v3_key")
        with self.lock:
            self.merchants[mchid] = Merchant(mchid, appid, key)
            self._saved[mchid] = {"appid": appid, "api_v3_key": key}
        return {"mchid": mchid}

    def pay(self, prepay_id: str) -> dict[str, Any]:
        """The customer confirms in WeChat: the order is paid and the merchant notified."""
        with self.lock:
            txn = self.transactions.get(self.prepays.get(prepay_id, ""))
            if txn is None:
                raise PayError(404, "ORDER_NOT_EXIST", "no such prepay")
            if txn.state == "CLOSED":
                raise PayError(400, "ORDER_CLOSED", "the order is closed")
            if txn.state == "NOTPAY":
                txn.state = "SUCCESS"
                txn.transaction_id = f"42{datetime.now(UTC):%Y%m%d}{secrets.randbelow(10**18):018d}"
                txn.success_time = datetime.now(CHINA).isoformat(timespec="seconds")
        self.notify(txn.out_trade_no)
        return {"out_trade_no": txn.out_trade_no, "transaction_id": txn.transaction_id}

    def notify(self, out_trade_no: str, copies: int = 1) -> None:
        """Send (again) the payment notification, ``copies`` times at once (duplicates)."""
        with self.lock:
            txn = self.transactions.get(out_trade_no)
            if txn is None or not txn.transaction_id:
                raise PayError(404, "ORDER_NOT_EXIST", "no paid order with that out_trade_no")
            merchant = self.merchants[txn.mchid]
            self._in_flight += copies
        for _ in range(copies):
            item = Notification(out_trade_no)
            with self.lock:
                self.notifications.append(item)
            if self.inline:
                self._deliver(merchant, txn, item)
            else:
                threading.Thread(
                    target=self._deliver, args=(merchant, txn, item), daemon=True
                ).start()

    def _deliver(self, merchant: Merchant, txn: Transaction, item: Notification) -> None:
        try:
            for attempt, interval in enumerate((0, *RETRY_INTERVALS)):
                time.sleep(interval * self.retry_delay / RETRY_INTERVALS[0])
                if self._closed:  # checked after the wait: the server may have stopped meanwhile
                    break
                item.attempts = attempt + 1
                headers, body = notification_for(merchant, txn)
                try:
                    response = self._client.post(txn.notify_url, content=body, headers=headers)
                    item.history.append(response.status_code)
                    if response.status_code in (200, 204):
                        item.status = "delivered"
                        return
                except httpx.HTTPError as exc:
                    item.history.append(type(exc).__name__)
                except RuntimeError:
                    if not self._closed:
                        raise
                    break  # closed between the check and the call
                if attempt >= 3 and self.retry_delay < 1:
                    break  # tests: four tries are enough to prove the retry
            item.status = "failed"
        finally:
            with self.lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.notify_all()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def control(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        """/sandbox/pay/… routes (``parts`` after "pay")."""
        if parts == ["merchants"] and method == "POST":
            return self.add_merchant(body)
        if parts == ["pay"] and method == "POST":
            return self.pay(str(body.get("prepay_id", "")))
        if parts == ["notify"] and method == "POST":
            copies = body.get("copies", 1)
            if not isinstance(copies, int) or not 1 <= copies <= 20:
                raise PayError(400, "PARAM_ERROR", "copies must be 1…20")
            self.notify(str(body.get("out_trade_no", "")), copies)
            return {"queued": copies}
        if parts == ["flush"] and method == "POST":
            return {"drained": self.flush(float(body.get("timeout", 30)))}
        if parts == ["notifications"] and method == "GET":
            with self.lock:
                return [vars(n) for n in self.notifications[-200:]]
        if len(parts) == 2 and parts[0] == "transactions" and method == "GET":
            with self.lock:
                txn = self.transactions.get(parts[1])
                if txn is None:
                    raise PayError(404, "ORDER_NOT_EXIST", "no such order")
                return vars(txn)
        raise PayError(404, "NOT_FOUND", f"no pay control route {method} {'/'.join(parts)}")
