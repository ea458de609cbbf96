"""Fission's minimal StaffTask moves to the workspace lane: every row is copied into
``workspace.StaffTask`` (kind "fission", keyed on its grant so the service never doubles it),
then the old table is dropped. Reversible: going back copies the fission tasks home again."""

from django.db import migrations


def grant_key(grant_id, task_id):
    # Same format as services.grant_task_key; tasks without a grant keep their old id.
    return f"fission:grant:{grant_id}" if grant_id else f"fission:task:{task_id}"


def forwards(apps, schema_editor):
    Old = apps.get_model("fission", "StaffTask")
    New = apps.get_model("workspace", "StaffTask")
    rows = Old.objects.select_related("participant", "grant").order_by("pk")
    for old in rows.iterator(chunk_size=500):
        key = grant_key(old.grant_id, old.pk)
        if New.objects.filter(tenant_id=old.tenant_id, dedupe_key=key).exists():
            continue
        new = New.objects.create(
            tenant_id=old.tenant_id,
            staff_id=old.staff_id,
            kind="fission",
            title=old.text[:200],
            body=old.grant.payload if old.grant_id else old.text,
            customer_id=old.participant.customer_id,
            source=f"fission:{old.participant.campaign_id}",
            dedupe_key=key,
            status="done" if old.done_at else "open",
            done_at=old.done_at,
        )
        # auto_now_add stamped "now"; the task keeps its original creation time.
        New.objects.filter(pk=new.pk).update(created_at=old.created_at)


def backwards(apps, schema_editor):
    Old = apps.get_model("fission", "StaffTask")
    New = apps.get_model("workspace", "StaffTask")
    Participant = apps.get_model("fission", "Participant")
    Grant = apps.get_model("fission", "RewardGrant")
    for new in New.objects.filter(kind="fission", dedupe_key__startswith="fission:grant:"):
        grant = Grant.objects.filter(pk=int(new.dedupe_key.rsplit(":", 1)[1])).first()
        if grant is None:
            continue
        participant = Participant.objects.get(pk=grant.participant_id)
        old = Old.objects.create(
            tenant_id=new.tenant_id,
            staff_id=new.staff_id,
            participant=participant,
            grant=grant,
            text=new.title[:500],
            done_at=new.done_at,
        )
        Old.objects.filter(pk=old.pk).update(created_at=new.created_at)
    New.objects.filter(kind="fission").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fission", "0001_fission_campaigns"),
        ("workspace", "0001_workspace"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
        migrations.DeleteModel(name="StaffTask"),
    ]
