"""The callback URL WeCom calls: verify, decrypt, store, answer — nothing slower.

Per tenant: ``/wecom/callback/<slug>/``. GET answers WeCom's URL verification; POST stores the
event in the inbox before answering ``success`` (WeCom waits 5 s and retries 3 times otherwise).
Forged, stale or malformed requests get a 4xx and store nothing.
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from siyu.core.models import Tenant
from siyu.wecom.callback.inbox import inbox_store
from siyu.wecom.crypto import CryptoError, MsgCrypt, ParseError, SignatureError, parse_xml

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024  # WeCom's event envelopes are a few hundred bytes
TENANT_CACHE_SECONDS = 5.0

# slug → (expires at, tenant, its callback crypto or None when its EncodingAESKey is malformed)
_tenants: dict[str, tuple[float, Tenant, MsgCrypt | None]] = {}


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


def _tenant_crypt(slug: str) -> tuple[Tenant, MsgCrypt | None] | None:
    """The active tenant behind a callback URL and its crypto, cached in this process for a few
    seconds: loading them costs a query and decrypting every secret of the tenant, on each of
    possibly thousands of callbacks a second. Saving a tenant here clears the cache at once;
    other processes see a change (key rotated, tenant deactivated) within the few seconds."""
    now = time.monotonic()
    hit = _tenants.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        return None
    try:
        crypt: MsgCrypt | None = MsgCrypt(
            tenant.callback_token, tenant.callback_aes_key, tenant.corp_id
        )
    except CryptoError:
        crypt = None
    _tenants[slug] = (now + TENANT_CACHE_SECONDS, tenant, crypt)
    return tenant, crypt


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="wecom-callback-tenants")
def _forget_tenants(**kwargs: Any) -> None:
    _tenants.clear()  # all of them: the saved tenant may have changed its slug


@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest, slug: str) -> HttpResponse:
    found = _tenant_crypt(slug)
    if found is None:
        return _plain(404, "unknown tenant")
    tenant, crypt = found
    signature = request.GET.get("msg_signature", "")
    timestamp = request.GET.get("timestamp", "")
    nonce = request.GET.get("nonce", "")
    if not (signature and timestamp.isdigit() and nonce) or len(nonce) > 64 or len(signature) != 40:
        return _plain(400, "missing or malformed msg_signature, timestamp or nonce")
    if abs(time.time() - int(timestamp)) > settings.SIYU_CALLBACK_MAX_AGE_SECONDS:
        return _plain(403, "stale timestamp: refusing a replayed request")
    if crypt is None:
        # The tenant's EncodingAESKey is malformed: a settings problem, not WeCom's request.
        logger.error("tenant %s has an invalid callback EncodingAESKey", tenant.slug)
        return _plain(503, "callback not configured")
    if request.method == "GET":
        echostr = request.GET.get("echostr", "")
        if not echostr or len(echostr) > 4096:
            return _plain(400, "missing echostr")
        try:
            return _plain(200, crypt.verify_url(signature, timestamp, nonce, echostr))
        except SignatureError:
            return _plain(403, "signature mismatch")
        except CryptoError as exc:
            return _plain(400, f"cannot decrypt echostr ({exc.code})")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY_BYTES:
        return _plain(413, "body too large")
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _plain(413, "body too large")
    try:
        message = crypt.decrypt_message(signature, timestamp, nonce, body)
        data = parse_xml(message)
    except SignatureError:
        return _plain(403, "signature mismatch")
    except ParseError:
        return _plain(400, "malformed message")
    except CryptoError as exc:
        # Wrong key, wrong receive id (another corp's message) or corrupt data.
        return _plain(400, f"cannot decrypt ({exc.code})")
    if not isinstance(data, dict) or not data.get("Event"):
        return _plain(400, "not an event message")
    inbox_store(tenant=tenant, message=message, data=data)
    return _plain(200, "success")
