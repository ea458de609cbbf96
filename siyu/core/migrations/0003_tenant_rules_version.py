"""A per-tenant version of the rules that decide which events subscribers get (a cache key)."""

from django.db import migrations, models

import siyu.core.models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0002_tenant_wechat_oauth'),
    ]

    operations = [
        migrations.AddField(
            model_name='tenant',
            name='rules_version',
            field=models.PositiveBigIntegerField(
                default=siyu.core.models.new_rules_version, editable=False
            ),
        ),
    ]
