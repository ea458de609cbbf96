"""``siyu segment count --tenant SLUG 'EXPR'``: how many customers match, from the shell."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.segments.errors import SegmentError
from siyu.segments.selectors import ENGINES, segment_count


class Command(BaseCommand):
    help = "Segment tools. count: print how many customers of a tenant match an expression."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        count = sub.add_parser("count", help="print the number of matching customers")
        count.add_argument("--tenant", required=True, help="tenant slug")
        count.add_argument("--engine", choices=ENGINES, default="auto")
        count.add_argument("expression")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {options['tenant']!r}")
        with tenant_context(tenant):
            try:
                result = segment_count(expression=options["expression"], engine=options["engine"])
            except SegmentError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(str(result.count))
        if options["verbosity"] > 1:
            self.stderr.write(f"{result.engine}, {result.took_ms} ms")
