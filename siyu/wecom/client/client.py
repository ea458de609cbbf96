"""The one WeCom client. Written to WeCom's real API; the sandbox serves the same surface.

Every call: asks the governor, carries a cached token (refreshed once on 40014/42001/41001),
has a timeout, retries transient failures (-1, 5xx, timeouts, 45033) a bounded number of times
with jittered backoff, and turns a non-zero errcode into a typed exception.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from siyu.core.http import shared_http_client
from siyu.wecom.client import governor
from siyu.wecom.client.errors import (
    NotExternalContact,
    RateLimited,
    TokenError,
    TransientError,
    WeComError,
    error_for,
)
from siyu.wecom.client.tokens import cached_token, invalidate_token

if TYPE_CHECKING:
    from siyu.core.models import Tenant

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
# transfer_customer, resigned/transfer_customer and both groupchat transfers take ≤100 ids.
TRANSFER_BATCH = 100


class WeComClient:
    def __init__(
        self,
        *,
        base_url: str,
        corp_id: str,
        secret: str,
        tenant_id: int,
        timeout: float | None = None,
        max_retries: int | None = None,
        http: httpx.Client | None = None,
        backoff: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.corp_id = corp_id
        self.secret = secret
        self.tenant_id = tenant_id
        self.max_retries = settings.SIYU_WECOM_MAX_RETRIES if max_retries is None else max_retries
        self.backoff = backoff
        self._http = http or shared_http_client(
            timeout=timeout or settings.SIYU_WECOM_TIMEOUT_SECONDS
        )

    @classmethod
    def for_tenant(cls, tenant: Tenant, *, app: str = "contact", **kwargs: Any) -> WeComClient:
        """``app="contact"`` uses the customer-contact secret, ``"agent"`` the self-built app's
        (for app messages to staff)."""
        secret = tenant.contact_secret if app == "contact" else tenant.app_secret
        return cls(
            base_url=tenant.wecom_base_url,
            corp_id=tenant.corp_id,
            secret=secret,
            tenant_id=tenant.pk,
            **kwargs,
        )

    def close(self) -> None:
        """Nothing to release: the connection pool is the process's (``shared_http_client``);
        a client handed in belongs to whoever made it."""

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: JSON, body: JSON | None, api: str) -> JSON:
        try:
            response = self._http.request(method, self.base_url + path, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise TransientError(-2, f"timeout: {exc}", api=api) from exc
        except httpx.TransportError as exc:
            raise TransientError(-3, f"network: {exc}", api=api) from exc
        if response.status_code >= 500:
            raise TransientError(-response.status_code, f"HTTP {response.status_code}", api=api)
        try:
            data = response.json()
        except ValueError as exc:
            raise TransientError(-4, f"HTTP {response.status_code}, not JSON", api=api) from exc
        if not isinstance(data, dict):
            raise WeComError(-5, "response is not a JSON object", api=api)
        errcode = int(data.get("errcode", 0) or 0)
        if errcode != 0:
            raise error_for(errcode, str(data.get("errmsg", "")), api=api, payload=data)
        return data

    def _fetch_token(self) -> tuple[str, int]:
        governor.acquire(self.tenant_id, "gettoken")
        data = self._send(
            "GET",
            "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
            body=None,
            api="gettoken",
        )
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def call(
        self,
        method: str,
        path: str,
        *,
        params: JSON | None = None,
        body: JSON | None = None,
        retry: bool = True,
    ) -> JSON:
        """Call ``path`` (relative to .../cgi-bin/) and return the JSON body of a success.
        ``retry=False`` for calls that are not idempotent: a transient failure may have been
        applied, so it goes back to the caller to reconcile instead of being repeated here."""
        api = path.strip("/")
        token_refreshed = False
        attempt = 0
        while True:
            governor.acquire(self.tenant_id, api)
            token = cached_token(self.corp_id, self.secret, self._fetch_token)
            try:
                return self._send(
                    method,
                    path,
                    params={**(params or {}), "access_token": token},
                    body=body,
                    api=api,
                )
            except TokenError:
                invalidate_token(self.corp_id, self.secret, token)
                if token_refreshed:
                    raise
                token_refreshed = True
            except RateLimited:
                raise  # blocked for the window: the caller reschedules, we do not spin
            except TransientError as exc:
                if not retry or attempt >= self.max_retries:
                    raise
                attempt += 1
                delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)  # noqa: S311
                logger.info(
                    "WeCom %s transient error (%s); retry %s in %.2fs", api, exc, attempt, delay
                )
                time.sleep(delay)

    def get(self, path: str, **params: Any) -> JSON:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: JSON) -> JSON:
        return self.call("POST", path, body=body)

    def _pages(self, path: str, body: JSON, key: str) -> Iterator[JSON]:
        """Follow ``next_cursor`` until WeCom says there is no more."""
        cursor = ""
        while True:
            data = self.post(path, {**body, "cursor": cursor})
            yield from data.get(key, [])
            cursor = data.get("next_cursor") or ""
            if not cursor:
                return

    # --- address book ----------------------------------------------------------------------

    def department_list(self) -> list[JSON]:
        return list(self.get("department/list").get("department", []))

    def user_ids(self) -> Iterator[JSON]:
        """``{userid, department}`` for every member (user/list_id, paged)."""
        return self._pages("user/list_id", {"limit": 10000}, "dept_user")

    def user_get(self, userid: str) -> JSON:
        return self.get("user/get", userid=userid)

    # --- customers -------------------------------------------------------------------------

    def follow_user_list(self) -> list[str]:
        return list(self.get("externalcontact/get_follow_user_list").get("follow_user", []))

    def external_contact_ids(self, userid: str) -> list[str]:
        try:
            return list(self.get("externalcontact/list", userid=userid).get("external_userid", []))
        except NotExternalContact:
            return []  # WeCom answers 84061 for a member with no customers

    def external_contact(self, external_userid: str) -> JSON:
        """The customer and every follow_user (paged past 500 followers)."""
        data = self.get("externalcontact/get", external_userid=external_userid)
        follow = list(data.get("follow_user", []))
        cursor = data.get("next_cursor") or ""
        while cursor:
            page = self.get("externalcontact/get", external_userid=external_userid, cursor=cursor)
            follow.extend(page.get("follow_user", []))
            cursor = page.get("next_cursor") or ""
        return {"external_contact": data.get("external_contact", {}), "follow_user": follow}

    def external_contact_pages(self, userids: list[str]) -> Iterator[list[JSON]]:
        """batch/get_by_user for up to 100 members at a time, one page (≤100 rows) per item, so
        callers can read and write in bulk per page."""
        for start in range(0, len(userids), 100):
            body: JSON = {"userid_list": userids[start : start + 100], "limit": 100}
            cursor = ""
            while True:
                data = self.post("externalcontact/batch/get_by_user", {**body, "cursor": cursor})
                yield list(data.get("external_contact_list", []))
                cursor = data.get("next_cursor") or ""
                if not cursor:
                    break

    def external_contacts_by_users(self, userids: list[str]) -> Iterator[JSON]:
        for page in self.external_contact_pages(userids):
            yield from page

    def remark(self, **body: Any) -> JSON:
        return self.post("externalcontact/remark", body)

    # --- tags ------------------------------------------------------------------------------

    def corp_tag_list(
        self, *, tag_ids: list[str] | None = None, group_ids: list[str] | None = None
    ) -> list[JSON]:
        body = {"tag_id": tag_ids or [], "group_id": group_ids or []}
        return list(self.post("externalcontact/get_corp_tag_list", body).get("tag_group", []))

    def add_corp_tag(self, body: JSON) -> JSON:
        return dict(self.post("externalcontact/add_corp_tag", body).get("tag_group", {}))

    def edit_corp_tag(self, *, id: str, name: str | None = None, order: int | None = None) -> None:
        body: JSON = {"id": id}
        if name is not None:
            body["name"] = name
        if order is not None:
            body["order"] = order
        self.post("externalcontact/edit_corp_tag", body)

    def del_corp_tag(
        self, *, tag_ids: list[str] | None = None, group_ids: list[str] | None = None
    ) -> None:
        self.post(
            "externalcontact/del_corp_tag", {"tag_id": tag_ids or [], "group_id": group_ids or []}
        )

    def mark_tag(
        self, *, userid: str, external_userid: str, add: list[str], remove: list[str]
    ) -> None:
        self.post(
            "externalcontact/mark_tag",
            {
                "userid": userid,
                "external_userid": external_userid,
                "add_tag": add,
                "remove_tag": remove,
            },
        )

    # --- group chats -----------------------------------------------------------------------

    def group_chat_ids(self, *, owners: list[str] | None = None) -> Iterator[JSON]:
        body: JSON = {"status_filter": 0, "limit": 1000}
        if owners:
            body["owner_filter"] = {"userid_list": owners}
        return self._pages("externalcontact/groupchat/list", body, "group_chat_list")

    def group_chat(self, chat_id: str) -> JSON:
        return dict(
            self.post("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})[
                "group_chat"
            ]
        )

    # --- transfers (在职/离职继承) ------------------------------------------------------------

    def transfer_customers(
        self,
        *,
        handover_userid: str,
        takeover_userid: str,
        external_userids: list[str],
        resigned: bool,
        message: str = "",
    ) -> list[JSON]:
        """Start moving ≤100 customers; one ``{external_userid, errcode}`` per customer (0 =
        waiting for the customer, final after 24 h). Resigned transfers take no message."""
        if not 1 <= len(external_userids) <= TRANSFER_BATCH:
            raise ValueError(f"transfer 1 to {TRANSFER_BATCH} customers per call")
        body: JSON = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": external_userids,
        }
        if resigned:
            path = "externalcontact/resigned/transfer_customer"
        else:
            path = "externalcontact/transfer_customer"
            if message:
                body["transfer_success_msg"] = message
        return list(self.post(path, body).get("customer", []))

    def transfer_results(
        self, *, handover_userid: str, takeover_userid: str, resigned: bool
    ) -> Iterator[JSON]:
        """``{external_userid, status, takeover_time}`` for every transfer between the two
        (status 1 done, 2 waiting, 3 refused, 4 takeover at limit)."""
        path = (
            "externalcontact/resigned/transfer_result"
            if resigned
            else "externalcontact/transfer_result"
        )
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        return self._pages(path, body, "customer")

    def unassigned_customers(self) -> Iterator[JSON]:
        """``{handover_userid, external_userid, dimission_time}`` of departed members' customers
        not yet transferred (cursor paging: page_id stops at 50 000 rows)."""
        return self._pages("externalcontact/get_unassigned_list", {"page_size": 1000}, "info")

    def transfer_group_chats(
        self, *, chat_ids: list[str], new_owner: str, resigned: bool
    ) -> list[JSON]:
        """Move ≤100 group chats at once; returns only the failures ``{chat_id, errcode,
        errmsg}`` (the rest moved immediately)."""
        if not 1 <= len(chat_ids) <= TRANSFER_BATCH:
            raise ValueError(f"transfer 1 to {TRANSFER_BATCH} group chats per call")
        path = (
            "externalcontact/groupchat/transfer"
            if resigned
            else "externalcontact/groupchat/onjob_transfer"
        )
        data = self.post(path, {"chat_id_list": chat_ids, "new_owner": new_owner})
        return list(data.get("failed_chat_list", []))

    # --- contact ways (联系我) ---------------------------------------------------------------

    def add_contact_way(self, body: JSON) -> JSON:
        """``{config_id, qr_code}`` of a new contact way (qr_code for scene 2 only)."""
        data = self.post("externalcontact/add_contact_way", body)
        return {"config_id": str(data["config_id"]), "qr_code": str(data.get("qr_code", ""))}

    def get_contact_way(self, config_id: str) -> JSON:
        return dict(
            self.post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
        )

    def update_contact_way(self, body: JSON) -> None:
        """``user``/``party`` given replace the way's lists; omitted fields stay as they are."""
        self.post("externalcontact/update_contact_way", body)

    def del_contact_way(self, config_id: str) -> None:
        self.post("externalcontact/del_contact_way", {"config_id": config_id})

    def add_join_way(self, body: JSON) -> str:
        """A group chat's join way (加入群聊); shares the contact-way quota."""
        return str(self.post("externalcontact/groupchat/add_join_way", body)["config_id"])

    def get_join_way(self, config_id: str) -> JSON:
        data = self.post("externalcontact/groupchat/get_join_way", {"config_id": config_id})
        return dict(data["join_way"])

    def del_join_way(self, config_id: str) -> None:
        self.post("externalcontact/groupchat/del_join_way", {"config_id": config_id})

    def absolute_url(self, url: str) -> str:
        """WeCom's QR URLs are absolute; the sandbox's are relative to its host."""
        return str(httpx.URL(self.base_url).join(url))

    def qr_image(self, url: str) -> tuple[bytes, str]:
        """The bytes and content type of a contact way's ``qr_code``. WeCom returns an absolute
        URL; a relative one (the sandbox's) is read against the API's host."""
        governor.acquire(self.tenant_id, "qr_code")
        target = self.absolute_url(url)
        try:
            response = self._http.get(target)
        except httpx.HTTPError as exc:
            raise TransientError(-3, f"qr_code: {exc}", api="qr_code") from exc
        if response.status_code != 200:
            raise WeComError(-response.status_code, "qr_code not available", api="qr_code")
        return response.content, response.headers.get("content-type", "image/png")

    # --- messages --------------------------------------------------------------------------

    def send_welcome_msg(
        self, *, welcome_code: str, text: str = "", attachments: list[JSON] | None = None
    ) -> None:
        body: JSON = {"welcome_code": welcome_code, "attachments": attachments or []}
        if text:
            body["text"] = {"content": text}
        self.post("externalcontact/send_welcome_msg", body)

    def send_app_message(self, body: JSON) -> JSON:
        return self.post("message/send", body)

    # --- mass sends (企业群发) and moments -----------------------------------------------------

    def add_msg_template(self, body: JSON) -> JSON:
        """Create a mass-send task (``{msgid, fail_list}``). Not idempotent and never retried
        here: after a transient failure the caller reconciles with ``groupmsg_list``."""
        return self.call("POST", "externalcontact/add_msg_template", body=body, retry=False)

    def groupmsg_list(
        self, *, chat_type: str, start_time: int, end_time: int, creator: str = ""
    ) -> Iterator[JSON]:
        """Mass sends created in ``[start_time, end_time]`` (a month at most)."""
        body: JSON = {
            "chat_type": chat_type,
            "start_time": start_time,
            "end_time": end_time,
            "filter_type": 2,
            "limit": 100,
        }
        if creator:
            body["creator"] = creator
        return self._pages("externalcontact/get_groupmsg_list_v2", body, "group_msg_list")

    def groupmsg_tasks(self, msgid: str) -> Iterator[JSON]:
        """``{userid, status (0 unsent, 2 sent), send_time}`` per member of a mass send."""
        return self._pages(
            "externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000}, "task_list"
        )

    def groupmsg_send_results(self, msgid: str, userid: str) -> Iterator[JSON]:
        """``{external_userid | chat_id, status, send_time}``: 0 unsent, 1 sent, 2 not a
        friend, 3 over the receive quota."""
        body = {"msgid": msgid, "userid": userid, "limit": 1000}
        return self._pages("externalcontact/get_groupmsg_send_result", body, "send_list")

    def remind_groupmsg(self, msgid: str) -> None:
        self.post("externalcontact/remind_groupmsg_send", {"msgid": msgid})

    def cancel_groupmsg(self, msgid: str) -> None:
        self.post("externalcontact/cancel_groupmsg_send", {"msgid": msgid})

    def add_moment_task(self, body: JSON) -> str:
        """Start a moment (朋友圈) task; not idempotent, never retried here. Returns the jobid."""
        data = self.call("POST", "externalcontact/add_moment_task", body=body, retry=False)
        return str(data["jobid"])

    def moment_task_result(self, jobid: str) -> JSON:
        return self.get("externalcontact/get_moment_task_result", jobid=jobid)
