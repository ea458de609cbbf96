"""The library: items of every kind, folders and tags, what may be sent, the dead-link check,
the API and console pages, and who may do what."""

import io
from datetime import timedelta

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from siyu.content import selectors, services
from siyu.content.models import ContentItem, Folder, UrlStatus, Visit
from siyu.content.richtext import sanitize_html
from siyu.core.errors import InvalidInput, NotFound, PermissionDenied
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context


def _png() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return SimpleUploadedFile("p.png", buffer.getvalue(), content_type="image/png")


def test_sanitizer_keeps_formatting_and_drops_active_content() -> None:
    dirty = (
        '<h2 onclick="x()">标题</h2><p style="color:red">正文<script>alert(1)</script>'
        '<a href="javascript:alert(1)">坏链接</a><a href="https://ok.test/a?b=1&c=2">好</a>'
        '<img src="x" onerror="alert(1)"><iframe src="https://evil.test"></iframe>'
        "<strong>粗<em>斜</strong></p><div>块</div>"
    )
    assert sanitize_html(dirty) == (
        '<h2>标题</h2><p>正文<a rel="noopener nofollow">坏链接</a>'
        '<a href="https://ok.test/a?b=1&amp;c=2" rel="noopener nofollow">好</a>'
        "<img><strong>粗<em>斜</em></strong></p>块"
    )


def test_every_kind_states_what_it_needs(in_acme) -> None:
    ops = in_acme["ops"]
    for kind, fields in {
        "article": {},
        "link": {"url": ""},
        "product": {},
        "name_card": {},
    }.items():
        with pytest.raises(InvalidInput):
            services.item_create(actor=ops, kind=kind, title="x", **fields)
    for bad in (
        {"kind": "bogus", "title": "x"},
        {"kind": "link", "title": "x", "url": "ftp://files.test/a"},
        {"kind": "link", "title": "x", "url": "javascript:alert(1)"},
        {"kind": "link", "title": "", "url": "https://a.test"},
        {"kind": "product", "title": "x", "price_fen": -1},
        {"kind": "product", "title": "x", "price_fen": "12"},
        {"kind": "name_card", "title": "x", "card_staff_id": 999999},
        {"kind": "article", "title": "x", "body": "<p>x</p>", "tags": ["a" * 33]},
        {"kind": "article", "title": "x", "body": "<p>x</p>", "folder_id": 999999},
        {"kind": "poster", "title": "x", "file": SimpleUploadedFile("a.png", b"not an image")},
    ):
        with pytest.raises((InvalidInput, NotFound)):
            services.item_create(actor=ops, **bad)
    assert ContentItem.objects.count() == 0

    card = services.item_create(
        actor=ops, kind="name_card", title="名片", card_staff_id=in_acme["alice"].pk
    )
    product = services.item_create(actor=ops, kind="product", title="精华液", price_fen=19900)
    # A poster may be created before its upload, but cannot be sent until it has one.
    poster = services.item_create(actor=ops, kind="poster", title="双十一海报", tags=["活动"])
    assert services.item_missing(poster) == "an image file"
    with pytest.raises(InvalidInput, match="incomplete"):
        services.tracked_url(item=poster, sender=in_acme["alice"], source="workspace")
    poster = services.item_files_set(actor=ops, item_id=poster.pk, file=_png())
    assert services.item_missing(poster) == ""
    for item in (card, product, poster):
        assert services.tracked_url(item=item, sender=in_acme["alice"], source="workspace")
    with pytest.raises(InvalidInput):
        services.item_update(actor=ops, item_id=product.pk, kind="article")


def test_folders_nest_and_only_empty_ones_are_deleted(in_acme, make_item) -> None:
    ops = in_acme["ops"]
    root = services.folder_create(actor=ops, name="产品")
    child = services.folder_create(actor=ops, name="护肤", parent_id=root.pk)
    with pytest.raises(InvalidInput):
        services.folder_create(actor=ops, name="产品")
    item = make_item(folder_id=child.pk, tags=["新品", "护肤"])
    tree = selectors.folder_tree(actor=in_acme["alice"])
    assert [(n.folder.name, n.depth) for n in tree] == [("产品", 0), ("护肤", 1)]
    assert list(selectors.items_list(actor=in_acme["alice"], tag="新品")) == [item]
    assert list(selectors.items_list(actor=in_acme["alice"], folder_id=root.pk)) == []
    with pytest.raises(InvalidInput):
        services.folder_delete(actor=ops, folder_id=root.pk)
    with pytest.raises(InvalidInput):
        services.folder_delete(actor=ops, folder_id=child.pk)
    services.item_archive(actor=ops, item_id=item.pk)
    services.folder_delete(actor=ops, folder_id=child.pk)
    assert list(Folder.objects.values_list("name", flat=True)) == ["产品"]


def test_only_content_managers_change_the_library(in_acme, make_item) -> None:
    item = make_item()
    for role in ("alice", "manager"):
        with pytest.raises(PermissionDenied):
            services.item_create(actor=in_acme[role], kind="article", title="x", body="x")
        with pytest.raises(PermissionDenied):
            services.item_update(actor=in_acme[role], item_id=item.pk, title="改")
        with pytest.raises(PermissionDenied):
            services.folder_create(actor=in_acme[role], name="x")
        # Everyone takes links from the briefcase, as themselves.
        link = services.tracked_link_for_self(actor=in_acme[role], item_id=item.pk)
        assert link.sender == in_acme[role]


def test_dead_links_are_marked_with_the_reason_and_never_hang(in_acme) -> None:
    ops = in_acme["ops"]
    statuses = {"/ok": 200, "/moved": 301, "/gone": 404, "/nohead": 405}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/nohead" and request.method == "GET":
            return httpx.Response(200)
        if request.url.path == "/slow":
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(statuses[request.url.path])

    client = httpx.Client(transport=httpx.MockTransport(answer))
    expected = {"/ok": "ok", "/moved": "ok", "/gone": "dead", "/nohead": "ok", "/slow": "dead"}
    for path, status in expected.items():
        item = services.item_create(
            actor=ops, kind="link", title=path, url=f"https://shop.test{path}"
        )
        assert item.url_status == UrlStatus.UNCHECKED
        checked = services.item_url_check(item_id=item.pk, client=client)
        assert checked.url_status == status, path
        assert checked.url_checked_at is not None
    gone = ContentItem.objects.get(title="/gone")
    assert gone.url_error == "HTTP 404"
    assert ContentItem.objects.get(title="/slow").url_error.startswith("ReadTimeout")
    # A refused connection (a real socket, no mock) is dead at once, not a stuck job.
    refused = services.item_create(
        actor=ops, kind="link", title="closed", url="http://127.0.0.1:9/x"
    )
    assert services.item_url_check(item_id=refused.pk).url_status == UrlStatus.DEAD
    # Changing the url resets the verdict; the sweep finds items whose check never ran.
    gone = services.item_update(actor=ops, item_id=gone.pk, url="https://shop.test/new")
    assert gone.url_status == UrlStatus.UNCHECKED and gone.url_error == ""
    ContentItem.objects.filter(pk=gone.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert selectors.unchecked_url_items(older_than=timedelta(minutes=5)) == [gone.pk]


def test_private_addresses_are_not_probed_unless_allowed(in_acme, settings) -> None:
    settings.SIYU_WEBHOOK_ALLOW_PRIVATE = False
    item = services.item_create(
        actor=in_acme["ops"], kind="link", title="内网", url="http://10.0.0.8/admin"
    )
    checked = services.item_url_check(item_id=item.pk)
    assert (checked.url_status, checked.url_error) == ("dead", "private or loopback address")


def test_silent_visits_are_reported_as_read_by_the_sweep(in_acme, make_item) -> None:
    from django.test import Client

    from siyu.content.services import tracked_url, visit_beacon, visit_reads_sweep

    item = make_item()
    path = tracked_url(item=item, sender=in_acme["alice"], source="workspace")
    Client().get(path.replace("http://127.0.0.1:8000", ""))
    visit = Visit.objects.get()
    Visit.objects.filter(pk=visit.pk).update(opened_at=timezone.now() - timedelta(minutes=1))
    visit_beacon(beacon_key=visit.beacon_key, seconds=42)
    assert visit_reads_sweep() == 0  # still reading
    later = timezone.now() + timedelta(minutes=6)
    assert visit_reads_sweep(now=later) == 1
    assert visit_reads_sweep(now=later) == 0
    assert Event.objects.get(type="content.read").payload["seconds"] == 42
    # The periodic job walks every tenant; nothing left to report, no lost link checks.
    from siyu.content.tasks import sweep

    assert sweep() == 0


def test_api_crud_links_and_stats(acme, globex, login) -> None:
    ops, alice = login.token(acme["ops"]), login.token(acme["alice"])
    folder = ops.post(
        "/api/v1/content/folders", {"name": "案例"}, content_type="application/json"
    ).json()
    created = ops.post(
        "/api/v1/content/items",
        {
            "kind": "article",
            "title": "客户案例",
            "body": "<p>好<script>x</script></p>",
            "folder_id": folder["id"],
            "tags": ["案例"],
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    item = created.json()
    assert item["body"] == "<p>好</p>" and item["tags"] == ["案例"] and item["missing"] == ""
    bad = ops.post(
        "/api/v1/content/items",
        {"kind": "link", "title": "x", "url": "not a url"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    unknown = ops.post(
        "/api/v1/content/items",
        {"kind": "article", "title": "x", "body": "x", "colour": "red"},
        content_type="application/json",
    )
    assert unknown.status_code == 422
    moved = ops.patch(
        f"/api/v1/content/items/{item['id']}", {"folder_id": None}, content_type="application/json"
    )
    assert moved.json()["folder_id"] is None
    poster = ops.post(
        "/api/v1/content/items",
        {"kind": "poster", "title": "海报"},
        content_type="application/json",
    ).json()
    uploaded = ops.post(f"/api/v1/content/items/{poster['id']}/file", {"file": _png()})
    assert uploaded.status_code == 200 and uploaded.json()["file_name"].endswith(".png")

    link = alice.post(
        f"/api/v1/content/items/{item['id']}/links",
        {"source": "workspace"},
        content_type="application/json",
    )
    assert link.status_code == 201
    assert link.json()["sender_id"] == acme["alice"].pk
    assert "/h5/acme/c/" in link.json()["url"]
    # A customer outside alice's scope is "not found"; nothing is created.
    with tenant_context(acme.tenant):
        from siyu.customers.services import customer_ensure

        stranger = customer_ensure(external_userid="wm-stranger")
    refused = alice.post(
        f"/api/v1/content/items/{item['id']}/links",
        {"customer_id": stranger.pk},
        content_type="application/json",
    )
    assert refused.status_code == 404
    stats = alice.get(f"/api/v1/content/items/{item['id']}/stats").json()
    assert stats == {
        "opens": 0,
        "visitors": 0,
        "identified": 0,
        "avg_read_seconds": 0.0,
        "forwards": 0,
    }
    assert alice.get(f"/api/v1/content/items/{item['id']}/tree").json() == []
    assert alice.get("/api/v1/content/stats/staff?days=0").status_code == 400
    # Another company's members do not see the item at all.
    assert (
        login.token(globex["admin"]).get(f"/api/v1/content/items/{item['id']}").status_code == 404
    )
    assert ops.delete(f"/api/v1/content/items/{item['id']}").status_code == 204
    again = alice.post(
        f"/api/v1/content/items/{item['id']}/links", {}, content_type="application/json"
    )
    assert again.status_code == 400  # archived: cannot be sent any more


def test_console_library_shows_dead_links_and_radar(acme, login) -> None:
    with tenant_context(acme.tenant):
        item = services.item_create(
            actor=acme["ops"], kind="link", title="活动页", url="https://shop.test/gone"
        )
        ContentItem.objects.filter(pk=item.pk).update(url_status="dead", url_error="HTTP 404")
    ops = login.session(acme["ops"])
    library = ops.get("/operate/content/")
    assert "活动页" in library.content.decode() and "失效" in library.content.decode()
    radar = ops.get(f"/operate/content/{item.pk}/")
    assert "链接已失效（HTTP 404）" in radar.content.decode()
    alice = login.session(acme["alice"])
    made = alice.post(f"/operate/content/{item.pk}/", {"op": "link"})
    assert made.status_code == 200 and "/h5/acme/c/" in made.context["link_url"]
    created = ops.post(
        "/operate/content/new/",
        {"kind": "product", "title": "礼盒", "price": "99.5", "tags": "礼品, 节日"},
    )
    assert created.status_code == 302
    with tenant_context(acme.tenant):
        product = ContentItem.objects.get(title="礼盒")
        assert product.price_fen == 9950
        assert sorted(t.name for t in product.tags.all()) == ["礼品", "节日"]
    refused = ops.post("/operate/content/new/", {"kind": "product", "title": "x", "price": "1.234"})
    assert refused.status_code == 302  # back to the form with the message; nothing created
    with tenant_context(acme.tenant):
        assert not ContentItem.objects.filter(title="x").exists()
