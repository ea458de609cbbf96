"""Fission's old StaffTask rows move into workspace tasks (and back, when unmigrated)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from siyu.testing.stories import Company

BEFORE = [("fission", "0001_fission_campaigns")]
# The models as they are between the two: fission's old table and the workspace's new one.
BETWEEN = [*BEFORE, ("workspace", "0001_workspace")]
AFTER = [("fission", "0002_tasks_to_workspace")]
CREATED = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh graph sees what is applied now


@pytest.mark.django_db(transaction=True)
def test_fission_tasks_are_copied_to_the_workspace_and_back(acme: Company) -> None:
    apps = _migrate(BEFORE).loader.project_state(BETWEEN).apps
    tenant_id, alice_id = acme.tenant.pk, acme["alice"].pk
    customer = apps.get_model("customers", "Customer").objects.create(tenant_id=tenant_id)
    campaign = apps.get_model("fission", "Campaign").objects.create(
        tenant_id=tenant_id, kind="task", name="c", starts_at=CREATED, ends_at=CREATED
    )
    tier = apps.get_model("fission", "RewardTier").objects.create(
        tenant_id=tenant_id,
        campaign=campaign,
        threshold=3,
        kind="staff_task",
        payload="礼盒",
        stock=1,
    )
    participant = apps.get_model("fission", "Participant").objects.create(
        tenant_id=tenant_id, campaign=campaign, customer_id=customer.pk
    )
    grant = apps.get_model("fission", "RewardGrant").objects.create(
        tenant_id=tenant_id,
        participant=participant,
        tier=tier,
        kind="staff_task",
        payload="礼盒",
        code="c1",
    )
    Old = apps.get_model("fission", "StaffTask")
    old = Old.objects.create(
        tenant_id=tenant_id,
        staff_id=alice_id,
        participant=participant,
        grant=grant,
        text="请为 X 发放奖励：礼盒",
        done_at=CREATED,
    )
    Old.objects.filter(pk=old.pk).update(created_at=CREATED)

    apps = _migrate(AFTER).loader.project_state(AFTER).apps
    task = apps.get_model("workspace", "StaffTask").objects.get()
    assert (task.staff_id, task.customer_id, task.kind, task.status) == (
        alice_id,
        customer.pk,
        "fission",
        "done",
    )
    assert (task.title, task.body, task.dedupe_key) == (
        "请为 X 发放奖励：礼盒",
        "礼盒",
        f"fission:grant:{grant.pk}",
    )
    assert (task.created_at, task.done_at) == (CREATED, CREATED)

    apps = _migrate(BEFORE).loader.project_state(BETWEEN).apps
    back = apps.get_model("fission", "StaffTask").objects.get()
    assert (back.grant_id, back.staff_id, back.done_at) == (grant.pk, alice_id, CREATED)
    assert not apps.get_model("workspace", "StaffTask").objects.exists()
    # Back to every app's latest, including any that came to depend on fission's 0002.
    executor = MigrationExecutor(connection)
    _migrate(executor.loader.graph.leaf_nodes())
