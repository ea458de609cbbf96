"""Operator subcommands of ``siyu wecom``: replay the inbox, reconcile with WeCom."""

from datetime import datetime
from typing import Any, Protocol

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime

from siyu.core.models import Tenant


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {slug!r}")
    return tenant


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError(
            f"{flag} needs an ISO date-time with a zone, e.g. 2026-11-23T08:00:00+08:00"
        )
    return parsed


class Output(Protocol):
    def write(self, msg: str) -> object: ...


def add_subcommands(sub: Any) -> None:
    replay = sub.add_parser("replay", help="process a range of stored callbacks again")
    replay.add_argument("--tenant", required=True, help="tenant slug")
    replay.add_argument("--from-id", type=int, help="first inbox id")
    replay.add_argument("--to-id", type=int, help="last inbox id")
    replay.add_argument("--since", help="received at or after (ISO date-time)")
    replay.add_argument("--until", help="received at or before (ISO date-time)")
    replay.add_argument("--dead-only", action="store_true", help="only dead-lettered callbacks")
    replay.add_argument("--inline", action="store_true", help="process here instead of queueing")
    reconcile = sub.add_parser("reconcile", help="compare with WeCom and heal the difference")
    reconcile.add_argument("--tenant", required=True, help="tenant slug")


def run(command: str, options: dict[str, Any], stdout: Output) -> bool:
    """Run an operator subcommand; False if ``command`` is not one of them."""
    if command == "replay":
        from siyu.wecom.callback.inbox import inbox_process, inbox_replay

        if options["from_id"] and options["to_id"] and options["from_id"] > options["to_id"]:
            raise CommandError("--from-id is after --to-id")
        ids = inbox_replay(
            tenant=_tenant(options["tenant"]),
            first_id=options["from_id"],
            last_id=options["to_id"],
            since=_when(options["since"], "--since"),
            until=_when(options["until"], "--until"),
            include_dead_only=options["dead_only"],
        )
        if options["inline"]:
            outcomes: dict[str, int] = {}
            for inbox_id in ids:
                outcome = inbox_process(inbox_id=inbox_id)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            stdout.write(f"replayed {len(ids)} callbacks: {outcomes}\n")
        else:
            stdout.write(f"queued {len(ids)} callbacks for replay\n")
        return True
    if command == "reconcile":
        from siyu.wecom.sync.services import reconcile

        result = reconcile(_tenant(options["tenant"]))
        stdout.write(
            f"reconciliation #{result.pk} {result.status}: healed {result.healed or 'nothing'}\n"
        )
        if result.status != "done":
            raise CommandError(result.error)
        return True
    return False
