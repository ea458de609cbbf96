"""The tenant context: which company (WeCom corp) the current code acts for.

Every tenant-owned query goes through ``TenantManager``, which reads this context and raises
``TenantNotSet`` when nothing set it: forgetting to pick a tenant is an error, never "all rows".
The context is set in exactly three places: ``TenantMiddleware`` (console), the API
authenticators, and ``tenant_context`` (tasks, commands, callbacks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from siyu.core.models import Tenant

_current_tenant: ContextVar[Tenant | None] = ContextVar("siyu_tenant", default=None)


class TenantNotSet(RuntimeError):
    """A tenant-scoped query ran with no tenant in context."""


def get_current_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantNotSet("no tenant in context; wrap the call in tenant_context(tenant)")
    return tenant


def current_tenant_or_none() -> Tenant | None:
    return _current_tenant.get()


@contextmanager
def tenant_context(tenant: Tenant) -> Iterator[Tenant]:
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


def set_current_tenant(tenant: Tenant | None) -> object:
    """Set the tenant for the rest of this request; returns a token for ``reset_current_tenant``."""
    return _current_tenant.set(tenant)


def reset_current_tenant(token: object) -> None:
    _current_tenant.reset(token)  # type: ignore[arg-type]
