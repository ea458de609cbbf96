"""Who is visiting an H5 page? WeChat OAuth names the visitor; the customer core links them.

A visit remembers the customer in the visitor's session, per tenant, so later pages (fission
progress, tracked content) know them without another round trip to WeChat.
"""

import secrets
from urllib.parse import urlsplit

from django.http import HttpRequest

from siyu.core.errors import InvalidInput
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.merging import customer_survivor, identities_prove_same
from siyu.customers.models import Customer, IdentityKind
from siyu.wecom import oauth

STATE_KEY = "h5:oauth_state"


def _visitor_key(tenant: Tenant) -> str:
    return f"h5:visitor:{tenant.pk}"


def safe_next(raw: str) -> str:
    """Only paths on this site: an open redirect would lend our domain to phishing."""
    parts = urlsplit(raw or "/")
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//"):
        raise InvalidInput("next must be a path on this site")
    return raw


def oauth_begin(request: HttpRequest, tenant: Tenant, *, callback_url: str, next_url: str) -> str:
    """Where to send the visitor: WeChat's authorize page, with a state bound to the session."""
    if not oauth.oauth_configured(tenant):
        raise InvalidInput("this company has not configured its official account for H5 pages")
    state = secrets.token_urlsafe(12)
    request.session[STATE_KEY] = {"state": state, "next": safe_next(next_url), "tenant": tenant.pk}
    return oauth.authorize_url(tenant, redirect_uri=callback_url, state=state)


def oauth_complete(request: HttpRequest, tenant: Tenant, *, code: str, state: str) -> str:
    """Exchange the code, link openid (+ unionid) to one customer, remember them; returns the
    page to go back to."""
    pending = request.session.pop(STATE_KEY, None)
    if not pending or pending.get("state") != state or pending.get("tenant") != tenant.pk:
        raise InvalidInput("this sign-in link expired or was not started here; open the page again")
    if not code or len(code) > 128:
        raise InvalidInput("missing authorization code")
    visitor = oauth.exchange_code(tenant, code)
    identities = [(IdentityKind.OPENID.value, visitor.openid)]
    if visitor.unionid:
        identities.append((IdentityKind.UNIONID.value, visitor.unionid))
    with tenant_context(tenant):
        customer = identities_prove_same(identities, source="h5")
    request.session[_visitor_key(tenant)] = customer.pk
    return str(pending["next"])


def h5_visitor(request: HttpRequest, tenant: Tenant) -> Customer | None:
    """The customer this browser was identified as, if any (following merges since)."""
    customer_id = request.session.get(_visitor_key(tenant))
    if customer_id is None:
        return None
    with tenant_context(tenant):
        customer = Customer.objects.filter(pk=customer_id).first()
        return customer_survivor(customer) if customer is not None else None
