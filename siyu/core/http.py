"""Outbound HTTP clients with sane defaults, shared by the WeCom client, webhooks and the sandbox.

``TCP_NODELAY`` matters: httpx writes a request's headers and body separately, and with Nagle's
algorithm the body waits for the peer's delayed ACK — about 40 ms on every POST.
"""

import os
import socket
import ssl
import threading
from functools import cache

import httpx

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds of CPU; clients are made per job, so
    # the (thread-safe) context is made once per process.
    return httpx.create_ssl_context()


def http_client(
    *, timeout: float, transport: httpx.BaseTransport | None = None, **kwargs: object
) -> httpx.Client:
    """An outbound client; ``transport`` replaces the network (the demo's replay hands the
    sandbox one that calls Siyu's WSGI application in process)."""
    transport = transport or httpx.HTTPTransport(socket_options=NO_DELAY, retries=0, verify=_tls())
    return httpx.Client(timeout=timeout, transport=transport, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


_shared: dict[tuple[int, float], httpx.Client] = {}
_shared_lock = threading.Lock()


def shared_http_client(*, timeout: float) -> httpx.Client:
    """One keep-alive client per process and timeout, for the many short calls jobs make to one
    API: a job no longer pays for a new connection (nor the server for a new thread) per call.
    httpx clients are thread-safe; keyed by pid, so a forked worker never uses its parent's
    sockets. Never closed by its users."""
    key = (os.getpid(), timeout)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = _shared[key] = http_client(timeout=timeout)
        return client
