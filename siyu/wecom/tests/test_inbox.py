"""Callbacks stored in the inbox become state and events exactly once, in any order."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone

from siyu.accounts.models import Department, StaffMember, StaffStatus
from siyu.core.models import Event
from siyu.customers.models import Customer, CustomerIdentity, RelationStatus, StaffRelation
from siyu.testing.stories import Company
from siyu.wecom.callback import inbox
from siyu.wecom.callback.inbox import inbox_process, inbox_replay, inbox_store
from siyu.wecom.models import CallbackInbox, InboxStatus
from siyu.wecom.tests.builders import event_data, event_xml

EXT = "wmAAAAexternal0001"


def deliver(
    company: Company,
    change_type: str,
    *,
    event: str = "change_external_contact",
    at: int | None = None,
    **fields: str,
) -> CallbackInbox | None:
    at = at or int(time.time())
    message = event_xml(
        corp_id=company.tenant.corp_id,
        event=event,
        change_type=change_type,
        create_time=at,
        **fields,
    )
    data = event_data(
        event=event,
        change_type=change_type,
        create_time=at,
        corp_id=company.tenant.corp_id,
        **fields,
    )
    return inbox_store(tenant=company.tenant, message=message, data=data)


def process_all() -> list[str]:
    ids = (
        CallbackInbox.unscoped.filter(status=InboxStatus.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [inbox_process(inbox_id=i) for i in list(ids)]


def test_an_add_becomes_a_customer_a_relation_and_one_event(
    in_acme: Company, django_capture_on_commit_callbacks
) -> None:
    at = int(time.time()) - 5
    with django_capture_on_commit_callbacks() as stored:
        deliver(
            in_acme,
            "add_external_contact",
            at=at,
            UserID="alice",
            ExternalUserID=EXT,
            State="c:12",
            WelcomeCode="WC1",
        )
    assert len(stored) == 1  # processing is queued only after the inbox row commits
    with django_capture_on_commit_callbacks() as after:
        assert process_all() == ["done"]
    relation = StaffRelation.objects.get(external_userid=EXT)
    assert (relation.staff.userid, relation.status, relation.state) == (
        "alice",
        RelationStatus.ACTIVE,
        "c:12",
    )
    assert relation.added_at == datetime.fromtimestamp(at, tz=UTC)
    event = Event.objects.get(type="customer.added")
    assert event.customer_id == relation.customer_id
    assert event.payload["welcome_code"] == "WC1"
    assert event.payload["state"] == "c:12"
    assert len(after) >= 1  # profile enrichment is scheduled after the fast path commits
    assert (
        CustomerIdentity.objects.get(kind="external_userid", value=EXT).customer_id
        == relation.customer_id
    )


def test_a_retried_callback_is_stored_once_and_counted(in_acme: Company) -> None:
    fields = {"UserID": "alice", "ExternalUserID": EXT, "WelcomeCode": "WC1"}
    assert deliver(in_acme, "add_external_contact", at=1_700_000_000, **fields) is not None
    assert deliver(in_acme, "add_external_contact", at=1_700_000_000, **fields) is None
    assert deliver(in_acme, "add_external_contact", at=1_700_000_000, **fields) is None
    item = CallbackInbox.objects.get()
    assert item.duplicates == 2
    process_all()
    assert Event.objects.filter(type="customer.added").count() == 1


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_concurrent_callbacks_are_committed_together_before_any_is_answered(
    acme: Company, monkeypatch
) -> None:
    """Callbacks arriving while a write is in flight are written by one statement, enqueued as
    one job, and each caller learns its own outcome only once its row is committed."""
    from siyu.wecom import tasks

    jobs: list[list[int]] = []

    class Recorder:
        """Stands in for the task module-wide, so every writer thread sees it (patching the
        shared_task proxy reaches only the app current in the patching thread)."""

        @staticmethod
        def apply_async(args: tuple[list[int]], **_: object) -> None:
            jobs.append(args[0])

    monkeypatch.setattr(tasks, "process_callbacks", Recorder)
    fields = {"UserID": "alice", "ExternalUserID": EXT, "WelcomeCode": "WC0"}
    outcomes: dict[int, tuple[int, bool] | None] = {}

    def store(n: int) -> None:
        try:
            if n == 0:  # WeCom's retry of the callback held uncommitted below
                item = deliver(acme, "add_external_contact", at=1_700_000_000, **fields)
            else:
                item = deliver(
                    acme, "add_external_contact", at=1_700_000_000, ExternalUserID=f"wm{n:04d}"
                )
            # Seen from this thread's own connection: committed, whoever wrote it.
            seen = item is not None and CallbackInbox.unscoped.filter(pk=item.pk).exists()
            outcomes[n] = (item.pk, seen) if item is not None else None
        finally:
            connection.close()

    # Given a callback stored inside a transaction that has not committed yet (its lock holds
    # the next write: the same key on PostgreSQL, the database on SQLite)
    threads = [threading.Thread(target=store, args=(n,)) for n in range(16)]
    with transaction.atomic():
        held = deliver(acme, "add_external_contact", at=1_700_000_000, **fields)
        assert held is not None
        # when its retry starts the next write and 15 more callbacks arrive meanwhile
        threads[0].start()
        _wait_for(lambda: inbox._group._writing and not inbox._group._queue, "the first write")
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: len(inbox._group._queue) == 15, "15 callbacks queued")
        assert outcomes == {}  # nobody is answered while the write ahead of them waits
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    # then the retry is a duplicate, the 15 share one write and one job, all committed
    assert outcomes.pop(0) is None
    assert all(seen for _, seen in outcomes.values())  # type: ignore[misc]
    stored = sorted(pk for pk, _ in outcomes.values())  # type: ignore[misc]
    assert sorted(sorted(job) for job in jobs) == sorted([[held.pk], stored])
    assert CallbackInbox.unscoped.get(pk=held.pk).duplicates == 1
    assert CallbackInbox.unscoped.count() == 16


def test_distinct_adds_in_the_same_second_are_all_kept(in_acme: Company) -> None:
    at = 1_700_000_000
    for n in range(5):
        deliver(
            in_acme,
            "add_external_contact",
            at=at,
            UserID="alice",
            ExternalUserID=f"wm{n:04d}",
            WelcomeCode=f"W{n}",
        )
    deliver(
        in_acme,
        "add_external_contact",
        at=at,
        UserID="bob",
        ExternalUserID="wm0000",
        WelcomeCode="W9",
    )
    assert process_all() == ["done"] * 6
    assert StaffRelation.objects.count() == 6
    assert Customer.objects.count() == 5  # wm0000 follows two members: one customer
    assert Event.objects.filter(type="customer.added").count() == 6


def test_an_older_add_processed_after_a_newer_delete_does_not_resurrect(in_acme: Company) -> None:
    deliver(in_acme, "del_follow_user", at=1_700_000_100, UserID="alice", ExternalUserID=EXT)
    deliver(in_acme, "add_external_contact", at=1_700_000_000, UserID="alice", ExternalUserID=EXT)
    assert process_all() == ["done", "done"]
    relation = StaffRelation.objects.get()
    assert relation.status == RelationStatus.CUSTOMER_DELETED
    assert list(Event.objects.values_list("type", flat=True)) == ["customer.deleted_staff"]


def test_deletes_record_who_deleted_whom(in_acme: Company) -> None:
    deliver(in_acme, "add_external_contact", at=1_700_000_000, UserID="alice", ExternalUserID=EXT)
    deliver(in_acme, "add_external_contact", at=1_700_000_001, UserID="bob", ExternalUserID=EXT)
    deliver(in_acme, "del_follow_user", at=1_700_000_010, UserID="alice", ExternalUserID=EXT)
    deliver(
        in_acme,
        "del_external_contact",
        at=1_700_000_011,
        UserID="bob",
        ExternalUserID=EXT,
        Source="DELETE_BY_TRANSFER",
    )
    process_all()
    by_staff = {r.staff.userid: r for r in StaffRelation.objects.select_related("staff")}
    assert by_staff["alice"].status == RelationStatus.CUSTOMER_DELETED
    assert by_staff["bob"].status == RelationStatus.STAFF_DELETED
    assert by_staff["bob"].delete_source == "DELETE_BY_TRANSFER"


def test_replaying_processed_callbacks_changes_nothing(in_acme: Company) -> None:
    deliver(in_acme, "add_external_contact", at=1_700_000_000, UserID="alice", ExternalUserID=EXT)
    deliver(in_acme, "del_external_contact", at=1_700_000_050, UserID="alice", ExternalUserID=EXT)
    process_all()
    events_before = list(Event.objects.order_by("pk").values_list("pk", "type"))
    replayed = inbox_replay(tenant=in_acme.tenant)
    assert len(replayed) == 2
    assert process_all() == ["done", "done"]
    assert list(Event.objects.order_by("pk").values_list("pk", "type")) == events_before
    assert StaffRelation.objects.get().status == RelationStatus.STAFF_DELETED


def test_address_book_changes_update_staff_and_departments(in_acme: Company) -> None:
    deliver(
        in_acme,
        "create_party",
        event="change_contact",
        Id="9",
        Name="新零售部",
        ParentId="1",
        Order="5",
    )
    deliver(
        in_acme,
        "create_user",
        event="change_contact",
        UserID="erin",
        Name="Erin",
        Department="9",
        MainDepartment="9",
        Status="1",
    )
    deliver(
        in_acme,
        "update_user",
        event="change_contact",
        UserID="erin",
        NewUserID="erin2",
        Name="Erin Wang",
    )
    deliver(in_acme, "delete_user", event="change_contact", UserID="bob")
    assert process_all() == ["done"] * 4
    parent = Department.objects.get(wecom_id=9).parent
    assert parent is not None
    assert parent.wecom_id == 1
    erin = StaffMember.objects.get(userid="erin2")
    assert erin.name == "Erin Wang"
    assert list(erin.departments.values_list("wecom_id", flat=True)) == [9]
    assert StaffMember.objects.get(userid="bob").status == StaffStatus.LEFT


def test_events_siyu_does_not_handle_are_kept_but_not_failed(in_acme: Company) -> None:
    deliver(in_acme, "msg_audit_approved", UserID="alice", ExternalUserID=EXT)
    assert process_all() == ["ignored"]
    assert CallbackInbox.objects.get().status == InboxStatus.DONE


def test_a_failing_handler_is_retried_then_dead_lettered(
    in_acme: Company, settings, monkeypatch
) -> None:
    settings.SIYU_EVENT_MAX_ATTEMPTS = 2
    from siyu.wecom.callback import handlers

    def boom(msg: object, prepared: object) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(
        handlers.HANDLERS, ("change_external_contact", "transfer_fail"), handlers.Handler(boom)
    )
    item = deliver(
        in_acme, "transfer_fail", UserID="alice", ExternalUserID=EXT, FailReason="customer_refused"
    )
    assert item is not None
    assert inbox_process(inbox_id=item.pk) == "retry"
    CallbackInbox.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    assert inbox_process(inbox_id=item.pk) == "dead"
    item.refresh_from_db()
    assert item.status == InboxStatus.DEAD
    assert "handler bug" in item.last_error
    assert not Event.objects.exists()


@pytest.mark.parametrize("fail_reason", ["customer_refused", "customer_limit_exceed"])
def test_transfer_failures_become_events(in_acme: Company, fail_reason: str) -> None:
    deliver(in_acme, "transfer_fail", UserID="bob", ExternalUserID=EXT, FailReason=fail_reason)
    process_all()
    event = Event.objects.get(type="customer.transfer_failed")
    assert event.payload == {
        "takeover_userid": "bob",
        "external_userid": EXT,
        "reason": fail_reason,
    }
