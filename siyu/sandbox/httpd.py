"""The sandbox's HTTP server: WeCom's API under /cgi-bin/, WeChat OAuth for H5 pages, and a JSON
control API under /sandbox/ for tests, the demo and integrators.

    with Sandbox() as sandbox:            # starts on a free loopback port
        base = sandbox.base_url           # point WeComClient at base + "/cgi-bin/"
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import asdict
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import httpx

from siyu.sandbox.delivery import Dispatcher
from siyu.sandbox.faults import Faults, Limits
from siyu.sandbox.pay import PayEmulator, PayError
from siyu.sandbox.simulator import SimulationError, Simulator
from siyu.sandbox.state import CORP_SETTINGS, Corp, Department, Staff, World
from siyu.sandbox.wecom_api import ROUTES, ApiError, Request, new_token

logger = logging.getLogger(__name__)

TOKEN_TTL = 7200
OAUTH_CODE_TTL = 300
MAX_BODY = 25 * 1024 * 1024
# A valid 116×116 QR-looking PNG (finder squares, random modules): what the sandbox serves
# for a contact way's QR code, so posters and downloads get a decodable image.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000740000007401000000007ce12b8a000000d84944415478da9d"
    "94b17104310c03579ecff73af8febb832a80035de2c8232a92029000010a409026003ffc3dffbe6d2104bfb6"
    "d77844aa8d88d7f80fc0ea5a6e46fc0159b01de9c7f6f0a723fd00a6818efa9794629ad8dcf3cf6b4183dce3"
    "4fdfdaa47580076b2a2583fe9ee985d238f0bf7c97c062b307f80decd2f030e05fc00a3acd5f346dda0efc7f"
    "13dc847492bfa258d10cfc474debb90efc2f061219e94f4a300932db5f4bd0c23dff0fb09f6e020efd37be63"
    "c8f0ff4da230f15fb4544067fb4b0c394566fad11607fad709c15336f05ce37f014d0ba26f80e9bf6b000000"
    "0049454e44ae426082"
)


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Sandbox:
    def __init__(
        self,
        world: World | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        limits: Limits | None = None,
        callback_workers: int = 4,
        retry_delay: float = 0.5,
        state_file: Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` carries callbacks and payment notifications instead of the network.
        With ``callback_workers=0`` nothing is sent until ``dispatcher.deliver_queued()``, and
        payment notifications go out in the paying thread: one thread drives everything."""
        self.world = world or World()
        self.faults = faults or Faults()
        self.limits = limits or Limits()
        self.state_file = state_file
        self.dispatcher = Dispatcher(
            self.faults, workers=callback_workers, retry_delay=retry_delay, transport=transport
        )
        self.simulator = Simulator(self.world, self.dispatcher)
        self._tokens: dict[str, tuple[str, str, float]] = {}  # token → (corpid, secret, expires)
        self._token_for: dict[tuple[str, str], str] = {}
        self._windows: dict[tuple[str, str, str, int], int] = defaultdict(int)
        self._blocked: dict[tuple[str, str], float] = {}
        self._in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self._gate = threading.Lock()
        self._oauth: dict[str, tuple[str, str, float]] = {}  # code → (appid, unionid, expires)
        self._staff_oauth: dict[
            str, tuple[str, str, float]
        ] = {}  # code → (corpid, userid, expires)
        self._visitors: dict[str, str] = {}  # appid → unionid of the "current" H5 visitor
        self.calls: dict[str, int] = defaultdict(int)  # path → successful calls, for tests
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.pay = PayEmulator(
            base_url=self.base_url,
            retry_delay=retry_delay,
            transport=transport,
            inline=callback_workers == 0,
            saved=self.world.pay_merchants,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/cgi-bin/"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.dispatcher.close()
        self.pay.close()
        if self.state_file is not None:
            self.world.save(self.state_file)

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- WeCom API ---------------------------------------------------------------------

    def gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        corpid, secret = query.get("corpid", ""), query.get("corpsecret", "")
        if not corpid:
            raise ApiError(41002, "corpid missing")
        if not secret:
            raise ApiError(41004, "corpsecret missing")
        with self.world.lock:
            corp = self.world.corps.get(corpid)
            if corp is None:
                raise ApiError(40013, "invalid corpid")
            if secret not in (corp.contact_secret, corp.app_secret):
                raise ApiError(40001, "invalid credential, access_token is invalid or not latest")
            now = self.world.now()
            token = self._token_for.get((corpid, secret))
            if token is None or self._tokens[token][2] <= now:
                token = new_token()
                self._tokens[token] = (corpid, secret, now + TOKEN_TTL)
                self._token_for[(corpid, secret)] = token
            return {"access_token": token, "expires_in": int(self._tokens[token][2] - now)}

    def expire_tokens(self) -> int:
        with self.world.lock:
            for token, (corpid, secret, _) in list(self._tokens.items()):
                self._tokens[token] = (corpid, secret, 0.0)
            return len(self._tokens)

    def _corp_for(self, token: str) -> tuple[Corp, str]:
        if not token:
            raise ApiError(41001, "access_token missing")
        entry = self._tokens.get(token)
        if entry is None:
            raise ApiError(40014, "invalid access_token")
        corpid, secret, expires = entry
        if expires <= self.world.now():
            raise ApiError(42001, "access_token expired")
        return self.world.corps[corpid], secret

    def _take_budget(self, corpid: str, path: str) -> None:
        now = self.world.now()
        key = (corpid, path)
        if self._blocked.get(key, 0) > now:
            raise ApiError(45009, "api freq out of limit")
        per_minute, per_hour = self.limits.for_path(path)
        minute, hour = int(now // 60), int(now // 3600)
        if self._windows[(corpid, path, "m", minute)] >= per_minute:
            self._blocked[key] = (minute + 1) * 60
            raise ApiError(45009, "api freq out of limit")
        if self._windows[(corpid, path, "h", hour)] >= per_hour:
            self._blocked[key] = (hour + 1) * 3600
            raise ApiError(45009, "api freq out of limit")
        self._windows[(corpid, path, "m", minute)] += 1
        self._windows[(corpid, path, "h", hour)] += 1

    def api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: dict[str, Any],
        files: dict[str, tuple[str, bytes]],
    ) -> tuple[int, dict[str, Any]]:
        faults = self.faults
        if faults.applies_to(path) and path != "gettoken":
            if faults.roll(faults.server_error_rate):
                return 502, {"errcode": -1, "errmsg": "bad gateway"}
            if faults.roll(faults.timeout_rate):
                time.sleep(faults.timeout_seconds)
                return 200, {"errcode": -1, "errmsg": "system busy"}
            if faults.roll(faults.busy_rate):
                return 200, {"errcode": -1, "errmsg": "system busy"}
            if faults.roll(faults.rate_limit_rate):
                return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        if path == "gettoken":
            return 200, self.gettoken(query)
        entry = ROUTES.get(path)
        if entry is None:
            # WeCom answers unknown APIs with HTTP 404 and an errcode body.
            return 404, {"errcode": 40058, "errmsg": f"invalid api path {path}"}
        expected_method, handler = entry
        if method != expected_method:
            return 200, {
                "errcode": 40058 if expected_method == "POST" else 40003,
                "errmsg": f"{path} must be called with {expected_method}",
            }
        with self.world.lock:
            corp, _ = self._corp_for(query.get("access_token", ""))
            self._take_budget(corp.corpid, path)
            gate = (corp.corpid, path)
            with self._gate:
                if self.limits.concurrency and self._in_flight[gate] >= self.limits.concurrency:
                    raise ApiError(45033, "api concurrent out of limit")
                self._in_flight[gate] += 1
            try:
                result = handler(self.world, corp, Request(method, path, query, body, files))
                self.calls[path] += 1
            finally:
                with self._gate:
                    self._in_flight[gate] -= 1
        if faults.applies_to(path) and faults.roll(faults.timeout_after_rate):
            time.sleep(faults.timeout_seconds)  # applied, but the caller never hears so
        return 200, result

    # --- WeChat OAuth for H5 pages ------------------------------------------------------

    def oauth_authorize(self, query: dict[str, str]) -> str:
        appid, redirect = query.get("appid", ""), query.get("redirect_uri", "")
        if appid not in self.world.wechat_apps:
            raise ControlError("unknown appid", 400)
        if not redirect.startswith(("http://", "https://")):
            raise ControlError("redirect_uri must be absolute", 400)
        if query.get("scope") not in {"snsapi_base", "snsapi_userinfo"}:
            raise ControlError("scope must be snsapi_base or snsapi_userinfo", 400)
        with self.world.lock:
            unionid = query.get("sandbox_user") or self._visitors.get(appid)
            person = self.world.person(unionid)
            code = secrets.token_urlsafe(16)
            self._oauth[code] = (appid, person.unionid, self.world.now() + OAUTH_CODE_TTL)
        separator = "&" if "?" in redirect else "?"
        return f"{redirect}{separator}{urlencode({'code': code, 'state': query.get('state', '')})}"

    def openid(self, appid: str, unionid: str) -> str:
        """Stable per (official account, person), like WeChat's openid."""
        return "o" + hashlib.sha1(f"{appid}:{unionid}".encode()).hexdigest()[:27]  # noqa: S324

    def oauth_token(self, query: dict[str, str]) -> dict[str, Any]:
        appid, secret, code = query.get("appid", ""), query.get("secret", ""), query.get("code", "")
        if self.world.wechat_apps.get(appid) != secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        with self.world.lock:
            entry = self._oauth.pop(code, None)
            if entry is None or entry[0] != appid or entry[2] < self.world.now():
                return {"errcode": 40029, "errmsg": "invalid code"}
            unionid = entry[1]
        return {
            "access_token": new_token(),
            "expires_in": 7200,
            "refresh_token": new_token(),
            "openid": self.openid(appid, unionid),
            "scope": "snsapi_userinfo",
            "unionid": unionid,
        }

    def oauth_userinfo(self, query: dict[str, str]) -> dict[str, Any]:
        openid = query.get("openid", "")
        with self.world.lock:
            for appid in self.world.wechat_apps:
                for person in self.world.people.values():
                    if self.openid(appid, person.unionid) == openid:
                        return {
                            "openid": openid,
                            "nickname": person.name,
                            "sex": person.gender,
                            "headimgurl": person.avatar,
                            "unionid": person.unionid,
                            "privilege": [],
                        }
        return {"errcode": 40003, "errmsg": "invalid openid"}

    def staff_oauth(self, corpid: str, userid: str) -> str:
        with self.world.lock:
            corp = self._corp(corpid)
            if userid not in corp.staff:
                raise ControlError("no such member")
            code = secrets.token_urlsafe(16)
            self._staff_oauth[code] = (corpid, userid, self.world.now() + OAUTH_CODE_TTL)
            return code

    def staff_userinfo(self, query: dict[str, str]) -> dict[str, Any]:
        with self.world.lock:
            corp, _ = self._corp_for(query.get("access_token", ""))
            entry = self._staff_oauth.pop(query.get("code", ""), None)
        if entry is None or entry[0] != corp.corpid or entry[2] < self.world.now():
            return {"errcode": 40029, "errmsg": "invalid code"}
        return {"errcode": 0, "errmsg": "ok", "userid": entry[1]}

    # --- control API -------------------------------------------------------------------

    def _corp(self, corpid: str) -> Corp:
        corp = self.world.corps.get(corpid)
        if corp is None:
            raise ControlError(f"unknown corp {corpid!r}", 404)
        return corp

    def control(self, method: str, path: str, body: dict[str, Any]) -> Any:
        parts = [p for p in path.split("/") if p][1:]  # drop "sandbox"
        with self.world.lock:
            if parts == ["corps"] and method == "POST":
                return self._upsert_corp(body)
            if parts == ["faults"]:
                if method == "POST":
                    try:
                        self.faults.__dict__.update(
                            Faults.from_dict({**self.faults.to_dict(), **body}).__dict__
                        )
                    except (TypeError, ValueError) as exc:
                        raise ControlError(str(exc)) from exc
                return self.faults.to_dict()
            if parts == ["limits"]:
                if method == "POST":
                    try:
                        updated = Limits(**{**asdict(self.limits), **body})
                    except TypeError as exc:
                        raise ControlError(str(exc)) from exc
                    self.limits.__dict__.update(asdict(updated))
                    self._blocked.clear()
                return asdict(self.limits)
            if parts == ["clock"] and method == "POST":
                seconds = body.get("advance_seconds")
                if not isinstance(seconds, int | float) or seconds < 0:
                    raise ControlError("advance_seconds must be a non-negative number")
                self.world.clock_offset += seconds
                return {"now": self.world.now()}
            if parts == ["tokens", "expire"]:
                return {"expired": self.expire_tokens()}
            if parts == ["wechat_apps"] and method == "POST":
                appid, secret = str(body.get("appid", "")), str(body.get("secret", ""))
                if not appid or not secret:
                    raise ControlError("appid and secret are required")
                self.world.wechat_apps[appid] = secret
                return {"appid": appid}
            if parts == ["oauth", "visitor"] and method == "POST":
                appid = str(body.get("appid", ""))
                if appid not in self.world.wechat_apps:
                    raise ControlError("unknown appid")
                person = self.world.person(body.get("unionid"), str(body.get("name", "")))
                self._visitors[appid] = person.unionid
                return {"unionid": person.unionid, "openid": self.openid(appid, person.unionid)}
            if parts == ["snapshot"] and method == "POST":
                if self.state_file is None:
                    raise ControlError("the sandbox was started without --state")
                self.world.save(self.state_file)
                return {"saved": str(self.state_file)}
            if len(parts) >= 2 and parts[0] == "corps":
                return self._corp_control(method, parts[1], parts[2:], body)
        if parts == ["callbacks", "flush"] and method == "POST":
            timeout = body.get("timeout", 60)
            if not isinstance(timeout, int | float) or timeout <= 0:
                raise ControlError("timeout must be a positive number")
            return {"drained": self.dispatcher.flush(float(timeout))}
        raise ControlError(f"no control route {method} /{'/'.join(['sandbox', *parts])}", 404)

    def _upsert_corp(self, body: dict[str, Any]) -> dict[str, Any]:
        required = ("corpid", "contact_secret")
        missing = [k for k in required if not body.get(k)]
        if missing:
            raise ControlError(f"missing {', '.join(missing)}")
        allowed = CORP_SETTINGS
        unknown = set(body) - allowed
        if unknown:
            raise ControlError(f"unknown fields: {', '.join(sorted(unknown))}")
        if body.get("mass_send_rule", "days_in_month") not in {
            "days_in_month",
            "seven_per_week",
            "one_per_day",
            "four_per_month",
        }:
            raise ControlError(
                "mass_send_rule must be days_in_month, seven_per_week, one_per_day"
                " or four_per_month"
            )
        if body.get("callback_aes_key") and not re.fullmatch(
            r"[A-Za-z0-9]{43}", str(body["callback_aes_key"])
        ):
            raise ControlError("callback_aes_key must be 43 characters of [A-Za-z0-9]")
        corp = self.world.corps.get(body["corpid"])
        if corp is None:
            corp = Corp(
                corpid=body["corpid"],
                corp_name=body.get("corp_name", body["corpid"]),
                contact_secret=body["contact_secret"],
                app_secret=body.get("app_secret", ""),
            )
            corp.departments[1] = Department(1, corp.corp_name)
            self.world.corps[corp.corpid] = corp
        for key, value in body.items():
            setattr(corp, key, value)
        return {"corpid": corp.corpid}

    def _corp_control(self, method: str, corpid: str, rest: list[str], body: dict[str, Any]) -> Any:
        corp = self._corp(corpid)
        if not rest and method == "GET":
            return {
                **asdict(corp),
                "contact_secret": "***",
                "app_secret": "***",
                "people": {
                    u: asdict(self.world.people[u])
                    for u in set(corp.customers.values())
                    if u in self.world.people
                },
            }
        if rest == ["departments"] and method == "POST":
            for d in body.get("departments", []):
                corp.departments[int(d["id"])] = Department(
                    int(d["id"]), str(d["name"]), int(d.get("parentid", 1)), int(d.get("order", 0))
                )
            return {"departments": len(corp.departments)}
        if rest == ["staff"] and method == "POST":
            for s in body.get("staff", []):
                try:
                    member = Staff(**s)
                except TypeError as exc:
                    raise ControlError(f"bad staff entry: {exc}") from exc
                corp.staff[member.userid] = member
            return {"staff": len(corp.staff)}
        if rest == ["staff_oauth"] and method == "POST":
            return {"code": self.staff_oauth(corpid, str(body.get("userid", "")))}
        if rest == ["callbacks"] and method == "GET":
            rows = [d for d in self.dispatcher.log if d.corpid == corpid][-500:]
            return {
                "summary": self.dispatcher.summary(corpid),
                "recent": [{k: v for k, v in asdict(d).items() if k != "xml"} for d in rows],
            }
        if rest == ["simulate", "batch"] and method == "POST":
            actions = body.get("actions")
            if not isinstance(actions, list):
                raise ControlError("actions must be a list of {action, params}")
            results = []
            for item in actions:
                try:
                    results.append(
                        {
                            "ok": True,
                            "result": self.simulator.run(
                                corpid, str(item.get("action")), dict(item.get("params") or {})
                            ),
                        }
                    )
                except SimulationError as exc:
                    if body.get("stop_on_error"):
                        raise ControlError(str(exc)) from exc
                    results.append({"ok": False, "error": str(exc)})
            return {"results": results}
        if len(rest) == 2 and rest[0] == "simulate" and method == "POST":
            try:
                return self.simulator.run(corpid, rest[1], body)
            except SimulationError as exc:
                raise ControlError(str(exc)) from exc
        raise ControlError(
            f"no control route {method} /sandbox/corps/{corpid}/{'/'.join(rest)}", 404
        )


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    # One segment per response and no Nagle: otherwise headers and body go out separately and
    # delayed ACKs add ~40 ms to every call.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox %s", format % args)

    def _send(
        self,
        status: int,
        payload: Any,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = (
            payload
            if isinstance(payload, bytes)
            else json.dumps(payload, ensure_ascii=False).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ControlError("body too large", 413)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            raw = self._read() if method == "POST" else b""
            if url.path.startswith("/cgi-bin/"):
                self._api(method, url.path[len("/cgi-bin/") :], query, raw)
            elif url.path == "/connect/oauth2/authorize":
                self._send(
                    302, b"", "text/plain", {"Location": self.sandbox.oauth_authorize(query)}
                )
            elif url.path == "/sns/oauth2/access_token":
                self._send(200, self.sandbox.oauth_token(query))
            elif url.path == "/sns/userinfo":
                self._send(200, self.sandbox.oauth_userinfo(query))
            elif url.path.startswith("/v3/"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, result = self.sandbox.pay.api(method, url.path, headers, raw)
                self._send(status, result if status != 204 else b"")
            elif url.path.startswith("/sandbox/pay/"):
                self._pay_control(method, url.path, query, raw)
            elif url.path.startswith("/sandbox/qr/"):
                self._send(200, PNG, "image/png")
            elif url.path.startswith("/sandbox/"):
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ControlError("the body must be a JSON object")
                self._send(200, self.sandbox.control(method, url.path, body))
            else:
                self._send(404, {"error": "not found"})
        except ControlError as exc:
            self._send(exc.status, {"error": str(exc)})
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"invalid JSON: {exc}"})
        except Exception:
            logger.exception("sandbox error on %s", self.path)
            self._send(500, {"error": "sandbox internal error"})

    def _pay_control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        parts = [p for p in path.split("/") if p][2:]  # drop "sandbox/pay"
        try:
            if len(parts) == 2 and parts[0] == "checkout":
                # The "WeChat cashier": a page with one button; confirming pays and goes back.
                if method == "POST":
                    self.sandbox.pay.pay(parts[1])
                    back = query.get("redirect", "")
                    if back.startswith(("http://", "https://", "/")):
                        self._send(302, b"", "text/plain", {"Location": back})
                        return
                    self._send(200, "支付成功".encode(), "text/plain; charset=utf-8")
                    return
                page = (
                    '<!doctype html><meta charset="utf-8"><title>微信支付（沙箱）</title>'
                    '<form method="post"><button id="pay">确认支付</button></form>'
                )
                self._send(200, page.encode(), "text/html; charset=utf-8")
                return
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            self._send(200, self.sandbox.pay.control(method, parts, body))
        except PayError as exc:
            self._send(exc.status, {"code": exc.code, "message": exc.message})

    def _api(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        body: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        content_type = self.headers.get("Content-Type", "")
        try:
            if path == "auth/getuserinfo":
                self._send(200, self.sandbox.staff_userinfo(query))
                return
            if "multipart/form-data" in content_type:
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {content_type}\r\n\r\n".encode() + raw
                )
                for part in message.iter_parts():
                    field = part.get_param("name", header="content-disposition")
                    payload = part.get_payload(decode=True)
                    files[field if isinstance(field, str) else "media"] = (
                        part.get_filename() or "file",
                        payload if isinstance(payload, bytes) else b"",
                    )
            elif method == "POST" and raw.strip():
                try:
                    parsed = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self._send(
                        200, _error_body(40058, "Warning: wrong json format. invalid request")
                    )
                    return
                if not isinstance(parsed, dict):
                    self._send(
                        200, _error_body(40058, "Warning: wrong json format. invalid request")
                    )
                    return
                body = parsed
            status, result = self.sandbox.api(method, path, query, body, files)
            if status != 200 or result.get("errcode"):
                self._send(status, result)
                return
            self._send(200, {"errcode": 0, "errmsg": "ok", **result})
        except ApiError as exc:
            self._send(200, {**exc.empty, **_error_body(exc.errcode, exc.errmsg)})


def _error_body(errcode: int, errmsg: str) -> dict[str, Any]:
    hint = secrets.token_hex(8)
    return {
        "errcode": errcode,
        "errmsg": f"{errmsg}, hint: [{hint}], from ip: 127.0.0.1, more info at "
        f"https://open.work.weixin.qq.com/devtool/query?e={errcode}",
    }
