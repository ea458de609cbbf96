"""The client address of the request being served, for audit entries written deep in services."""

from contextvars import ContextVar

_client_ip: ContextVar[str | None] = ContextVar("siyu_client_ip", default=None)


def set_client_ip(ip: str | None) -> object:
    return _client_ip.set(ip)


def reset_client_ip(token: object) -> None:
    _client_ip.reset(token)  # type: ignore[arg-type]


def current_client_ip() -> str | None:
    return _client_ip.get()
