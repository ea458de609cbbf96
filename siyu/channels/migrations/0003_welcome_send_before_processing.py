"""The welcome lane records a send from the callback itself, before the add is processed."""

import django.db.models.deletion
from django.db import migrations, models


def _fill(apps, schema_editor):
    WelcomeSend = apps.get_model("channels", "WelcomeSend")
    StaffRelation = apps.get_model("customers", "StaffRelation")
    for send in WelcomeSend.objects.select_related("add").iterator():
        relation = StaffRelation.objects.filter(pk=send.add.relation_id).first()
        send.code_id = send.add.code_id
        send.staff_id = send.add.staff_id
        send.external_userid = relation.external_userid if relation else ""
        send.save(update_fields=["code", "staff", "external_userid"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("channels", "0002_channel_code_group_join"),
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="welcomesend",
            name="code",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="channels.channelcode",
            ),
        ),
        migrations.AddField(
            model_name="welcomesend",
            name="staff",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.staffmember",
            ),
        ),
        migrations.AddField(
            model_name="welcomesend",
            name="external_userid",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="welcomesend",
            name="code",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="channels.channelcode",
            ),
        ),
        migrations.AlterField(
            model_name="welcomesend",
            name="staff",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="accounts.staffmember",
            ),
        ),
        migrations.AlterField(
            model_name="welcomesend",
            name="add",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="welcome",
                to="channels.channeladd",
            ),
        ),
    ]
