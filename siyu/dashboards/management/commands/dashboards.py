"""``siyu dashboards rebuild --tenant SLUG``: recompute the dashboard rollups from the event log
(backfill after install, or repair)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.dashboards.services import rollup_rebuild


class Command(BaseCommand):
    help = "Dashboard tools. rebuild: recompute the rollups from the event log."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser("rebuild", help="recompute the rollups of one tenant")
        rebuild.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {options['tenant']!r}")
        with tenant_context(tenant):
            cells = rollup_rebuild()
        self.stdout.write(f"rebuilt {cells} metric cells of {tenant.slug}")
