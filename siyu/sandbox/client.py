"""A typed client for the sandbox's control API (tests, the demo seeder, the CLI)."""

from __future__ import annotations

from typing import Any

from siyu.core.http import http_client


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http_client(timeout=timeout, base_url=self.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(
        self, path: str, body: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        response = self._http.post(
            f"/sandbox/{path}", json=body or {}, timeout=timeout or self._http.timeout
        )
        if response.status_code != 200:
            raise RuntimeError(f"sandbox {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def _get(self, path: str) -> Any:
        response = self._http.get(f"/sandbox/{path}")
        if response.status_code != 200:
            raise RuntimeError(f"sandbox {path}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def create_corp(self, corpid: str, contact_secret: str, **fields: Any) -> None:
        self._post("corps", {"corpid": corpid, "contact_secret": contact_secret, **fields})

    def add_departments(self, corpid: str, departments: list[dict[str, Any]]) -> None:
        self._post(f"corps/{corpid}/departments", {"departments": departments})

    def add_staff(self, corpid: str, staff: list[dict[str, Any]]) -> None:
        self._post(f"corps/{corpid}/staff", {"staff": staff})

    def simulate(self, corpid: str, action: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post(f"corps/{corpid}/simulate/{action}", params)
        return result

    def batch(
        self, corpid: str, actions: list[tuple[str, dict[str, Any]]], *, stop_on_error: bool = False
    ) -> list[dict[str, Any]]:
        body = {
            "actions": [{"action": a, "params": p} for a, p in actions],
            "stop_on_error": stop_on_error,
        }
        results: list[dict[str, Any]] = self._post(f"corps/{corpid}/simulate/batch", body)[
            "results"
        ]
        return results

    def scan(self, corpid: str, **params: Any) -> dict[str, Any]:
        return self.simulate(corpid, "scan", **params)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post("faults", faults)
        return result

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._post("limits", limits)
        return result

    def advance_clock(self, seconds: float) -> float:
        return float(self._post("clock", {"advance_seconds": seconds})["now"])

    def expire_tokens(self) -> int:
        return int(self._post("tokens/expire")["expired"])

    def flush_callbacks(self, timeout: float = 60) -> bool:
        result = self._post("callbacks/flush", {"timeout": timeout}, timeout=timeout + 30)
        return bool(result["drained"])

    def callbacks(self, corpid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"corps/{corpid}/callbacks")
        return result

    def dump(self, corpid: str) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"corps/{corpid}")
        return result

    def register_wechat_app(self, appid: str, secret: str) -> None:
        self._post("wechat_apps", {"appid": appid, "secret": secret})

    def set_visitor(self, appid: str, unionid: str | None = None, name: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._post(
            "oauth/visitor", {"appid": appid, "unionid": unionid, "name": name}
        )
        return result

    def add_pay_merchant(self, mchid: str, appid: str, api_v3_key: str) -> None:
        self._post("pay/merchants", {"mchid": mchid, "appid": appid, "api_v3_key": api_v3_key})

    def pay(self, prepay_id: str) -> dict[str, Any]:
        """The customer confirms the payment; the merchant's notify URL hears about it."""
        result: dict[str, Any] = self._post("pay/pay", {"prepay_id": prepay_id})
        return result

    def pay_renotify(self, out_trade_no: str, copies: int = 1) -> None:
        self._post("pay/notify", {"out_trade_no": out_trade_no, "copies": copies})

    def pay_flush(self, timeout: float = 30) -> bool:
        return bool(self._post("pay/flush", {"timeout": timeout}, timeout=timeout + 30)["drained"])

    def pay_notifications(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("pay/notifications")
        return result
