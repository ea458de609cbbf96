"""WeChat web OAuth for H5 pages: who is this visitor (openid, and unionid when the official
account is bound to the open platform)? Part of the gateway: the only outbound code to Tencent.

Flow: redirect the visitor to ``authorize_url``; WeChat sends them back with ``code``;
``exchange_code`` trades it once for the openid/unionid (codes live 5 minutes, single use).
"""

from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from django.conf import settings

from siyu.core.http import http_client
from siyu.core.models import Tenant
from siyu.wecom.client.errors import TransientError, WeComError, error_for


@dataclass(frozen=True)
class Visitor:
    openid: str
    unionid: str


def oauth_configured(tenant: Tenant) -> bool:
    return bool(tenant.wechat_appid and tenant.wechat_secret)


def authorize_url(tenant: Tenant, *, redirect_uri: str, state: str) -> str:
    # snsapi_base is silent (no consent page) and still returns unionid for bound accounts.
    query = urlencode(
        {
            "appid": tenant.wechat_appid,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
        }
    )
    return f"{tenant.wechat_oauth_url}?{query}#wechat_redirect"


def exchange_code(tenant: Tenant, code: str) -> Visitor:
    url = tenant.wechat_api_base_url.rstrip("/") + "/sns/oauth2/access_token"
    params = {
        "appid": tenant.wechat_appid,
        "secret": tenant.wechat_secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    try:
        with http_client(timeout=settings.SIYU_WECOM_TIMEOUT_SECONDS) as http:
            response = http.get(url, params=params)
    except httpx.HTTPError as exc:
        raise TransientError(-1, f"WeChat OAuth unreachable: {exc}", api="sns/oauth2") from exc
    if response.status_code >= 500:
        raise TransientError(-1, f"HTTP {response.status_code}", api="sns/oauth2")
    try:
        data = response.json()
    except ValueError:
        raise WeComError(-1, "WeChat OAuth answered non-JSON", api="sns/oauth2") from None
    if not isinstance(data, dict):
        raise WeComError(-1, "WeChat OAuth answered non-object", api="sns/oauth2")
    if data.get("errcode"):
        raise error_for(int(data["errcode"]), str(data.get("errmsg", "")), api="sns/oauth2")
    openid = str(data.get("openid", ""))
    if not openid:
        raise WeComError(-1, "WeChat OAuth answered without openid", api="sns/oauth2")
    return Visitor(openid=openid, unionid=str(data.get("unionid", "") or ""))
