"""The segments API and the ``siyu segment count`` command, end to end."""

import pytest
from django.core.management import CommandError, call_command

from siyu.audit.models import AuditEntry
from siyu.segments.models import SavedSegment
from siyu.segments.tests.conftest import World


def test_count_answers_within_the_callers_scope(world: World, login) -> None:
    world.customer(tags=["高意向"], staff="alice")
    world.customer(tags=["高意向"], staff="carol")
    body = {"expression": 'tag:"高意向"'}

    ops = login.token(world.company["ops"]).post(
        "/api/v1/segments/count", body, content_type="application/json"
    )
    alice = login.token(world.company["alice"]).post(
        "/api/v1/segments/count", body, content_type="application/json"
    )

    assert ops.status_code == 200
    assert ops.json()["count"] == 2
    assert ops.json()["engine"] == "bitmap"
    assert alice.json()["count"] == 1


def test_a_bad_expression_is_a_400_with_position_and_caret(world: World, login) -> None:
    world.tag("高意向")
    response = login.token(world.company["ops"]).post(
        "/api/v1/segments/count",
        {"expression": 'tag:"高意向" and attr.colour = "red"'},
        content_type="application/json",
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_segment"
    assert "unknown field attr.colour" in body["message"]
    assert body["details"]["position"] == 14
    assert body["details"]["caret"].endswith("\n" + " " * 17 + "^")


def test_saved_segments_lifecycle_and_members(world: World, login) -> None:
    mine = world.customer(tags=["VIP"], staff="alice")
    world.customer(tags=["VIP"], staff="carol")
    ops = login.token(world.company["ops"])

    created = ops.post(
        "/api/v1/segments",
        {"name": "贵宾", "expression": 'tag:"VIP"', "description": "d"},
        content_type="application/json",
    )
    assert created.status_code == 201
    segment_id = created.json()["id"]
    duplicate = ops.post(
        "/api/v1/segments",
        {"name": "贵宾", "expression": 'tag:"VIP"'},
        content_type="application/json",
    )
    assert duplicate.status_code == 409

    members = login.token(world.company["alice"]).get(f"/api/v1/segments/{segment_id}/customers")
    assert members.json()["count"] == 1
    assert members.json()["items"][0]["id"] == mine.pk
    assert ops.get(f"/api/v1/segments/{segment_id}/customers").json()["count"] == 2

    bad = ops.patch(
        f"/api/v1/segments/{segment_id}",
        {"expression": 'tag:"nope"'},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert SavedSegment.objects.get(pk=segment_id).expression == 'tag:"VIP"'  # unchanged

    renamed = ops.patch(
        f"/api/v1/segments/{segment_id}", {"name": "VIP 客户"}, content_type="application/json"
    )
    assert renamed.json()["name"] == "VIP 客户"
    assert ops.delete(f"/api/v1/segments/{segment_id}").status_code == 204
    assert not SavedSegment.objects.exists()
    assert list(
        AuditEntry.objects.filter(action__startswith="segment.")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["segment.create", "segment.update", "segment.delete"]


def test_staff_may_not_save_segments(world: World, login) -> None:
    response = login.token(world.company["alice"]).post(
        "/api/v1/segments",
        {"name": "x", "expression": "stage:paid"},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert not SavedSegment.objects.exists()


def test_the_command_prints_the_count(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.customer(tags=["高意向", "上海"])
    world.customer(tags=["高意向"])

    call_command("segment", "count", "--tenant", "acme", 'tag:"高意向" and not tag:"上海"')

    assert capsys.readouterr().out == "1\n"


def test_the_command_reports_a_bad_expression_with_its_position(world: World) -> None:
    with pytest.raises(CommandError, match=r"expected '\)', found the end.*\(at position 19\)"):
        call_command("segment", "count", "--tenant", "acme", 'tag:"x" or (stage:a')


def test_console_page_saves_and_counts_with_a_caret_on_errors(world: World, login) -> None:
    world.customer(tags=["VIP"])
    client = login.session(world.company["ops"])

    saved = client.post(
        "/segments/", {"op": "create", "name": "贵宾", "expression": 'tag:"VIP"'}, follow=True
    )
    live = client.get("/segments/count/", {"expression": 'tag:"VIP"'})
    broken = client.get("/segments/count/", {"expression": 'tag:"VIP" and'})

    assert saved.status_code == 200
    assert SavedSegment.objects.get().name == "贵宾"
    assert "<strong>1</strong>" in live.content.decode()
    assert "tag:&quot;VIP&quot; and\n" + " " * 13 + "^" in broken.content.decode()
