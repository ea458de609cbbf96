"""``siyu sandbox``: run the local WeCom emulator, and play customers against it.

siyu sandbox serve [--host 127.0.0.1] [--port 8100] [--state FILE] [--seed N]
siyu sandbox simulate --url URL --corp CORPID ACTION [--param key=value ...] [--count N]
"""

import json
import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.sandbox.state import World

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--param needs key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "The local WeCom sandbox: serve it, or simulate customers against it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
        cli = getattr(parser, "called_from_command_line", None)
        serve = sub.add_parser(
            "serve", help="run the emulator until Ctrl-C", called_from_command_line=cli
        )
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=8100)
        serve.add_argument("--state", type=Path, help="load from and save to this JSON file")
        serve.add_argument("--seed", type=int, default=0, help="seed for ids and fault choices")
        serve.add_argument(
            "--allow-remote", action="store_true", help="listen on a non-loopback host"
        )
        simulate = sub.add_parser(
            "simulate", help="play a customer or staff action", called_from_command_line=cli
        )
        simulate.add_argument("--url", default="http://127.0.0.1:8100")
        simulate.add_argument("--corp", required=True, help="corp id")
        simulate.add_argument(
            "what", help="scan, add, customer_delete, staff_delete, join_group, …"
        )
        simulate.add_argument(
            "--param",
            action="append",
            default=[],
            type=_param,
            help="key=value (JSON values allowed)",
        )
        simulate.add_argument(
            "--count", type=int, default=1, help="repeat the action (new customers each time)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "serve":
            self._serve(options)
        else:
            self._simulate(options)

    def _serve(self, options: dict[str, Any]) -> None:
        if options["host"] not in LOOPBACK and not options["allow_remote"]:
            raise CommandError("refusing to listen beyond loopback without --allow-remote")
        state: Path | None = options["state"]
        world = World.load(state) if state and state.exists() else World(seed=options["seed"])
        sandbox = Sandbox(world, host=options["host"], port=options["port"], state_file=state)
        self.stdout.write(
            f"WeCom sandbox at {sandbox.base_url}/cgi-bin/ (control API under /sandbox/)"
        )
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            sandbox.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()

    def _simulate(self, options: dict[str, Any]) -> None:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        params = dict(options["param"])
        actions = [(options["what"], dict(params)) for _ in range(options["count"])]
        with SandboxControl(options["url"]) as control:
            try:
                results = control.batch(options["corp"], actions)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
        ok = sum(1 for r in results if r["ok"])
        errors = sorted({r["error"] for r in results if not r["ok"]})
        self.stdout.write(f"{options['what']}: {ok} done, {len(results) - ok} failed")
        for error in errors[:10]:
            self.stdout.write(f"  error: {error}")
        if ok == 0:
            raise CommandError("no action succeeded")
