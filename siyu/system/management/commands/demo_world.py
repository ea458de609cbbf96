"""``siyu demo_world``: give the demo company half a year of history (once), replayed through
the sandbox and Siyu's own code — see ``siyu.demo.replay``."""

import logging
import shutil
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.demo.replay import LocalStage, Plan, Replay, local_sandbox


class Command(BaseCommand):
    help = "Replay the demo company's history (skipped when it has customers already)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=Plan.customers)
        parser.add_argument("--days", type=int, default=Plan.days)
        parser.add_argument("--seed", type=int, default=Plan.seed)
        parser.add_argument("--sandbox-port", type=int, default=8100)
        parser.add_argument("--site-url", default=settings.SITE_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        plan = Plan(customers=options["customers"], days=options["days"], seed=options["seed"])
        if not 10 <= plan.customers <= 1_000_000:
            raise CommandError("--customers must be between 10 and 1,000,000")
        if not 7 <= plan.days <= 730:
            raise CommandError("--days must be between 7 and 730")
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is not None:
            with tenant_context(tenant):
                if Customer.objects.exists():
                    self.stdout.write("demo history exists; nothing to replay")
                    return
        from siyu.config.celery import app

        # One process, one writer: every job runs where it is enqueued, at the replayed time.
        app.conf.task_always_eager = True
        logging.disable(logging.WARNING)  # a progress bar; failures are counted and listed
        state = settings.VAR_DIR / "sandbox.json"
        started = time.monotonic()
        with local_sandbox(options["sandbox_port"], state) as sandbox:
            replay = Replay(plan, LocalStage(sandbox), options["site_url"].rstrip("/"))
            tally = replay.run(_bar(self.stderr, started))
        self.stderr.write("")
        if options["verbosity"] > 1:
            for action, seconds in sorted(tally.seconds.items(), key=lambda kv: -kv[1]):
                self.stderr.write(f"  {action}: {seconds:.1f} s")
        for action, error in tally.failures.items():
            self.stderr.write(f"  {action}: {error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"demo history: {tally.adds} adds, {tally.deletes} deletions, {tally.opens} "
                f"article opens, {tally.orders} paid orders, {tally.participants} campaign "
                f"participants, {tally.mass_sends} mass sends in {time.monotonic() - started:.0f} s"
                + (f" ({tally.errors} actions failed; see the log)" if tally.errors else "")
            )
        )


def _bar(out: Any, started: float) -> Any:
    width = max(min(shutil.get_terminal_size().columns - 50, 40), 10)
    live = sys.stderr.isatty()
    last = 0.0

    def show(done: int, total: int, label: str) -> None:
        nonlocal last
        now = time.monotonic()
        if not live and now - last < 5 and done < total:
            return  # a log, not a terminal: a line every few seconds
        last = now
        filled = int(width * done / max(total, 1))
        line = (
            f"回放示例公司历史 [{'#' * filled}{'.' * (width - filled)}] "
            f"{100 * done // max(total, 1):3d}% {label} {now - started:4.0f}s"
        )
        out.write(("\r" + line) if live else line, ending="" if live else "\n")
        out.flush()

    return show
