"""Tracked links: signed tokens bound to tenant, link and expiry; refused cleanly when tampered
or expired; opens, reads and forwards recorded from the customer's page."""

import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from siyu.content.models import TrackingLink, Visit
from siyu.content.services import link_url, tracked_link_create, tracked_url
from siyu.content.signing import LinkToken, token_encode
from siyu.core.errors import InvalidInput
from siyu.core.models import Event


def _path(url: str) -> str:
    return urlsplit(url).path


def test_tracked_url_is_short_signed_and_bound_to_its_link(acme, make_item) -> None:
    item = make_item()
    url = tracked_url(item=item, sender=acme["alice"], source="masssend:12")
    assert url.startswith("http://127.0.0.1:8000/h5/acme/c/")
    assert len(url) < 120
    link = TrackingLink.objects.get()
    assert (link.item, link.sender, link.source, link.customer) == (
        item,
        acme["alice"],
        "masssend:12",
        None,
    )
    assert link.expires_at > timezone.now() + timedelta(days=179)


def test_tracked_url_refuses_archived_items_and_bad_sources(acme, make_item) -> None:
    from siyu.content.services import item_archive

    item = make_item()
    with pytest.raises(InvalidInput):
        tracked_url(item=item, sender=acme["alice"], source="")
    with pytest.raises(InvalidInput):
        tracked_url(item=item, sender=acme["alice"], source="x" * 65)
    item_archive(actor=acme["ops"], item_id=item.pk)
    with pytest.raises(InvalidInput):
        tracked_url(item=item, sender=acme["alice"], source="workspace")
    assert TrackingLink.objects.count() == 0


def test_tampered_foreign_and_expired_links_are_refused_and_record_nothing(
    acme, globex, make_item
) -> None:
    item = make_item()
    path = _path(tracked_url(item=item, sender=acme["alice"], source="workspace"))
    client = Client()
    token = path.rsplit("/", 1)[1]
    value, signature = token.rsplit(":", 1)
    flipped = "A" if signature[0] != "A" else "B"
    for bad in (
        f"{value}:{flipped}{signature[1:]}",  # signature changed
        f"{value}x:{signature}",  # value changed
        token[:-3],  # truncated
        "garbage",
        "x" * 500,
    ):
        response = client.get(f"/h5/acme/c/{bad}")
        assert response.status_code == 400, bad
        assert "链接无效" in response.content.decode()
    # A genuine acme token under globex's address: another company's signature.
    assert client.get(f"/h5/globex/c/{token}").status_code == 400
    past = tracked_link_create(
        item=item,
        sender=acme["alice"],
        source="workspace",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    expired = client.get(_path(link_url(link=past)))
    assert expired.status_code == 410
    assert "链接已过期" in expired.content.decode()
    # A token signed with a later expiry than its row (or for a missing row) is still refused.
    forged_expiry = token_encode(
        acme.tenant, LinkToken(link_id=past.pk, expires_at=timezone.now() + timedelta(days=1))
    )
    assert client.get(f"/h5/acme/c/{forged_expiry}").status_code == 410
    missing = token_encode(
        acme.tenant, LinkToken(link_id=99999, expires_at=timezone.now() + timedelta(days=1))
    )
    assert client.get(f"/h5/acme/c/{missing}").status_code == 400
    assert Visit.objects.count() == 0
    assert not Event.objects.filter(type__startswith="content.").exists()


def test_anonymous_open_read_beacon_and_forward_chain(acme, make_item) -> None:
    """Without an official account the visitor is anonymous (a browser key): opens, reads and
    the forward chain are still known; events carry no customer."""
    item = make_item()
    path = _path(tracked_url(item=item, sender=acme["alice"], source="workspace"))
    reader_a, reader_b, reader_c = Client(), Client(), Client()
    page_a = reader_a.get(path)
    assert page_a.status_code == 200
    assert "第一章" in page_a.content.decode()
    visit_a = Visit.objects.get()
    assert (visit_a.depth, visit_a.forwarded_from, visit_a.customer) == (0, None, None)
    # A reload within the window is the same open.
    reader_a.get(path)
    assert Visit.objects.count() == 1
    share_a = page_a.context["share_path"]
    # A's own share address reopened by A is not a forward.
    reader_a.get(share_a)
    assert Visit.objects.count() == 1
    page_b = reader_b.get(share_a)
    visit_b = Visit.objects.get(beacon_key=page_b.context["beacon_key"])
    assert visit_b.forwarded_from == visit_a and visit_b.depth == 1
    page_c = reader_c.get(page_b.context["share_path"])
    visit_c = Visit.objects.get(beacon_key=page_c.context["beacon_key"])
    assert visit_c.forwarded_from == visit_b and visit_c.depth == 2
    types = list(Event.objects.order_by("pk").values_list("type", flat=True))
    assert types == [
        "content.opened",
        "content.opened",
        "content.forwarded",
        "content.opened",
        "content.forwarded",
    ]
    assert not Event.objects.filter(customer_id__isnull=False).exists()


def _beacon(client: Client, body: object) -> tuple[int, dict]:
    response = client.post(
        "/h5/acme/c/beacon",
        data=body if isinstance(body, bytes | str) else json.dumps(body),
        content_type="application/json",
    )
    return response.status_code, (json.loads(response.content) if response.content else {})


def test_read_beacon_is_validated_capped_and_reported_once(acme, globex, make_item) -> None:
    item = make_item()
    client = Client()
    client.get(_path(tracked_url(item=item, sender=acme["alice"], source="workspace")))
    visit = Visit.objects.get()
    # Opened 100 s ago: the page may claim at most 100 s (+ slack).
    Visit.objects.filter(pk=visit.pk).update(opened_at=timezone.now() - timedelta(seconds=100))
    key = visit.beacon_key
    for bad in (
        {"key": key, "seconds": -1},
        {"key": key, "seconds": "12"},
        {"key": key, "seconds": 1.5},
        {"key": key, "seconds": True},
        {"key": key, "seconds": 10**9},
        {"key": "nope-not-a-key", "seconds": 5},
        {"seconds": 5},
        [1, 2],
        b"not json",
        b"{" + b" " * 2000 + b"}",
    ):
        status, body = _beacon(client, bad)
        assert status in (400, 413), bad
        assert body["code"] and body["message"]
    visit.refresh_from_db()
    assert visit.read_seconds == 0 and visit.last_beacon_at is None
    assert _beacon(client, {"key": key, "seconds": 0, "final": True})[0] == 204
    assert not Event.objects.filter(type="content.read").exists()  # closed unread: no read
    assert _beacon(client, {"key": key, "seconds": 30})[0] == 204
    assert _beacon(client, {"key": key, "seconds": 20})[0] == 204  # never goes back
    visit.refresh_from_db()
    assert visit.read_seconds == 30
    assert not Event.objects.filter(type="content.read").exists()
    assert _beacon(client, {"key": key, "seconds": 5000, "final": True})[0] == 204
    assert _beacon(client, {"key": key, "seconds": 5000, "final": True})[0] == 204
    visit.refresh_from_db()
    assert 100 <= visit.read_seconds <= 111  # capped by the time since the open
    read = Event.objects.get(type="content.read")
    assert read.payload == {
        "item_id": item.pk,
        "title": item.title,
        "staff_id": acme["alice"].pk,
        "seconds": visit.read_seconds,
        "visit_id": visit.pk,
    }
    # Another company's page does not know this visit.
    other = client.post(
        "/h5/globex/c/beacon",
        data=json.dumps({"key": key, "seconds": 1}),
        content_type="application/json",
    )
    assert other.status_code == 400


def test_files_are_served_only_through_valid_links(acme, make_item) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from siyu.content.services import item_create, item_files_set

    ops = acme["ops"]
    document = item_create(actor=ops, kind="file", title="报价单")
    item_files_set(
        actor=ops,
        item_id=document.pk,
        file=SimpleUploadedFile("quote.html", b"<script>alert(1)</script>"),
    )
    video = item_create(actor=ops, kind="video", title="视频")
    with pytest.raises(InvalidInput):
        item_files_set(actor=ops, item_id=video.pk, file=SimpleUploadedFile("v.html", b"<b>x"))
    path = _path(tracked_url(item=document, sender=acme["alice"], source="workspace"))
    client = Client()
    page = client.get(path)
    assert page.context["file_url"] == f"{path}/file"
    download = client.get(f"{path}/file")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")  # never rendered inline
    assert download["Content-Security-Policy"] == "sandbox"
    assert download.getvalue() == b"<script>alert(1)</script>"
    assert client.get(f"{path}/cover").status_code == 404
    assert client.get(f"{path}/other").status_code == 404
    token = path.rsplit("/", 1)[1]
    assert client.get(f"/h5/acme/c/{token[:-2]}xx/file").status_code == 400


def test_every_kind_renders_on_the_customer_page(acme, make_item) -> None:
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from siyu.content.services import item_create

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "blue").save(buffer, format="PNG")
    ops = acme["ops"]
    items = {
        "poster": item_create(
            actor=ops,
            kind="poster",
            title="海报",
            file=SimpleUploadedFile("p.png", buffer.getvalue()),
        ),
        "video": item_create(actor=ops, kind="video", title="视频", url="https://v.test/1"),
        "link": item_create(actor=ops, kind="link", title="链接", url="https://a.test/"),
        "product": item_create(actor=ops, kind="product", title="精华液", price_fen=19950),
        "name_card": item_create(
            actor=ops, kind="name_card", title="名片", card_staff_id=acme["alice"].pk
        ),
    }
    expected = {
        "poster": "/file",
        "video": "https://v.test/1",
        "link": "https://a.test/",
        "product": "¥199.50",
        "name_card": "Alice",
    }
    for kind, item in items.items():
        path = _path(tracked_url(item=item, sender=acme["bob"], source="workspace"))
        page = Client().get(path)
        assert page.status_code == 200
        assert expected[kind] in page.content.decode(), kind
        assert "由 Bob 分享" in page.content.decode()
