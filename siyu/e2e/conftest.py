"""Browser fixtures for the end-to-end journeys: Debian's Chromium driven by Playwright against
pytest-django's live server, with the WeCom sandbox playing the customers.

Playwright's own browser downloads are never used (the CI machine has no network): the
system Chromium at /usr/bin/chromium (or SIYU_CHROMIUM) is launched with the flags that keep
it from phoning home."""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Background fetches to Google hang on the closed network; none of them is needed here.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
MOBILE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(settings.VAR_DIR) / "e2e" / "screenshots"
DOCS_SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


@pytest.fixture
def browser(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """A headless Chromium for one test. Playwright's sync API keeps an asyncio loop running in
    this thread, and Django refuses ORM calls while one runs (SynchronousOnlyOperation); the
    test body's ORM calls are plain synchronous code between browser steps, so the guard is
    lifted for the e2e tests only, until the browser is gone (before the database teardown)."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # The ORM calls made while Playwright ran had connections of their own (Django's
            # are per context, and Playwright's greenlets switch contexts): close them here,
            # or PostgreSQL refuses to drop the test database at the end.
            connections.close_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def new_page(
    browser: Browser, live_server: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """``new_page(mobile=False)``: a page in a fresh browser context (its own cookies: one
    person), at the live server; relative paths in ``page.goto`` are resolved against it.
    When the test fails, every page's last state is saved next to the screenshots."""
    pages: list[Page] = []

    def make(*, mobile: bool = False) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            viewport=MOBILE if mobile else DESKTOP,
            is_mobile=mobile,
            locale="zh-CN",
        )
        context.set_default_timeout(15_000)
        pages.append(context.new_page())
        return pages[-1]

    yield make
    if request.node.stash.get(_FAILED, False):
        for n, page in enumerate(pages):
            if not page.is_closed():
                screenshot(page, f"failed-{request.node.name}-{n}")


def sign_in(page: Page, username: str, password: str) -> None:
    """Sign in through the console's login form."""
    page.goto("/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshot(page: Page, name: str, *, readme: bool = False) -> Path:
    """A full-page PNG as a CI artefact in var/e2e/screenshots/; with SIYU_SCREENSHOTS_TO_DOCS=1
    (``make screenshots``) the ``readme`` ones are copied to docs/screenshots/ too."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if readme and os.environ.get("SIYU_SCREENSHOTS_TO_DOCS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)
    return path
