"""``siyu analytics rebuild --tenant SLUG [--since YYYY-MM-DD]``: recompute the channel rollup
from the event log (backfill after install, or repair)."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.analytics.services import rollup_rebuild
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "Channel analytics tools. rebuild: recompute the daily rollup from the event log."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        rebuild = sub.add_parser("rebuild", help="recompute the rollup of one tenant")
        rebuild.add_argument("--tenant", required=True, help="tenant slug")
        rebuild.add_argument("--since", help="first local day to recompute (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {options['tenant']!r}")
        since = None
        if options["since"]:
            try:
                since = date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError("--since must be a date, YYYY-MM-DD") from None
        with tenant_context(tenant):
            cells = rollup_rebuild(since=since)
        self.stdout.write(
            f"rebuilt {cells} cells of {tenant.slug}" + (f" since {since}" if since else "")
        )
