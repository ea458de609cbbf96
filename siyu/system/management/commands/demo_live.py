"""``siyu demo_live``: keep the demo company moving while the demo runs (``siyu start`` runs
it beside the web server) — see ``siyu.demo.live``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.demo.live import live_run


class Command(BaseCommand):
    help = "Keep producing activity in the demo company (Ctrl-C stops)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox-url", default="http://127.0.0.1:8100")
        parser.add_argument("--interval", type=float, default=4.0, help="seconds between acts")
        parser.add_argument("--count", type=int, default=0, help="stop after N acts (0: never)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] < 0.1:
            raise CommandError("--interval must be at least 0.1 seconds")
        if options["count"] < 0:
            raise CommandError("--count must not be negative")
        try:
            tally = live_run(
                sandbox_url=options["sandbox_url"],
                interval=options["interval"],
                count=options["count"],
                seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            return
        self.stdout.write(f"{options['count']} acts, {tally.errors} failed")
