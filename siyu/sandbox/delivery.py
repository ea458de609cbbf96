"""Delivering callbacks to a tenant's URL the way WeCom does: encrypted XML POSTs, a 5 s
timeout, up to 3 retries on any non-200, and (when asked) drops, duplicates, delays and
reordering."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from siyu.core.http import http_client
from siyu.sandbox.faults import Faults
from siyu.sandbox.state import Corp
from siyu.wecom.crypto import MsgCrypt

logger = logging.getLogger(__name__)

TIMEOUT = 5.0
RETRIES = 3


@dataclass
class Delivery:
    id: int
    corpid: str
    key: str  # what the event is about, for the log
    xml: str
    attempts: int = 0
    status: str = "queued"  # queued | delivered | failed | dropped
    last_http_status: int | None = None
    duplicate: bool = False
    history: list[Any] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        faults: Faults,
        *,
        workers: int = 4,
        retry_delay: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.faults = faults
        self.retry_delay = retry_delay
        self._queue: queue.Queue[tuple[Corp, Delivery] | None] = queue.Queue()
        self._held: list[tuple[Corp, Delivery]] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.log: list[Delivery] = []
        self._next_id = 0
        self._closed = False
        self._client = http_client(timeout=TIMEOUT, transport=transport)
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 1)
        self._client.close()

    def send(self, corp: Corp, key: str, xml: str) -> None:
        """Queue one event for ``corp``'s callback URL (if it has one)."""
        if not corp.callback_url:
            return
        with self._lock:
            self._next_id += 1
            delivery = Delivery(self._next_id, corp.corpid, key, xml)
            self.log.append(delivery)
            if self.faults.roll(self.faults.drop_rate):
                delivery.status = "dropped"
                return
            copies = [delivery]
            if self.faults.roll(self.faults.duplicate_rate):
                self._next_id += 1
                dup = Delivery(self._next_id, corp.corpid, key, xml, duplicate=True)
                self.log.append(dup)
                copies.append(dup)
            window = self.faults.reorder_window
            for item in copies:
                self._in_flight += 1
                if window:
                    self._held.append((corp, item))
                else:
                    self._queue.put((corp, item))
            if window and len(self._held) >= window:
                self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        self.faults.shuffle(held)
        for item in held:
            self._queue.put(item)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued callback was delivered or gave up. True if drained."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._held:
                self._release_held()
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def deliver_queued(self) -> int:
        """Deliver what is queued now in the calling thread, in order; for a dispatcher with no
        workers, driven by one thread (the demo's replay: reproducible, one writer)."""
        delivered = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return delivered
            if item is None:
                return delivered
            corp, delivery = item
            try:
                self._deliver(corp, delivery)
                delivered += 1
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if not self._in_flight:
                        self._idle.notify_all()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            corp, delivery = item
            try:
                self._deliver(corp, delivery)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    if not self._in_flight:
                        self._idle.notify_all()

    def _deliver(self, corp: Corp, delivery: Delivery) -> None:
        if self.faults.delay_seconds:
            time.sleep(self.faults.delay_seconds)
        crypt = MsgCrypt(corp.callback_token, corp.callback_aes_key, corp.corpid)
        for attempt in range(RETRIES + 1):
            if self._closed:
                delivery.status = "failed"
                return
            delivery.attempts = attempt + 1
            timestamp = str(int(time.time()))
            nonce = str(int(time.monotonic_ns() % 10**10))
            body, signature = crypt.encrypt_message(
                delivery.xml, timestamp=timestamp, nonce=nonce, agent_id=corp.agent_id
            )
            try:
                response = self._client.post(
                    corp.callback_url,
                    params={"msg_signature": signature, "timestamp": timestamp, "nonce": nonce},
                    content=body.encode(),
                    headers={"Content-Type": "text/xml"},
                )
                delivery.last_http_status = response.status_code
                delivery.history.append(response.status_code)
                if response.status_code == 200:
                    delivery.status = "delivered"
                    return
            except httpx.HTTPError as exc:
                delivery.history.append(type(exc).__name__)
                delivery.last_http_status = None
            if attempt < RETRIES:
                time.sleep(self.retry_delay * (attempt + 1))
        delivery.status = "failed"
        logger.warning(
            "callback %s to %s failed after %s attempts",
            delivery.key,
            corp.callback_url,
            delivery.attempts,
        )

    def summary(self, corpid: str | None = None) -> dict[str, int]:
        with self._lock:
            rows = [d for d in self.log if corpid is None or d.corpid == corpid]
        out: dict[str, int] = {"total": len(rows), "duplicates": sum(d.duplicate for d in rows)}
        for d in rows:
            out[d.status] = out.get(d.status, 0) + 1
        return out
