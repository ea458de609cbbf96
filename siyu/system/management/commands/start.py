"""``siyu start``: the embedded one-command Siyu — migrate, prepare a demo tenant, and run the
web server together with a Celery worker and scheduler that need no external service."""

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for(url: str, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise CommandError(f"{url} did not come up")


class Command(BaseCommand):
    help = "Run Siyu embedded: web server, background worker and scheduler in one command."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port to listen on")
        parser.add_argument("--no-demo", action="store_true", help="skip the demo tenant")
        parser.add_argument("--no-worker", action="store_true", help="web server only")
        parser.add_argument(
            "--sandbox-port", type=int, default=8100, help="port of the local WeCom sandbox"
        )
        parser.add_argument(
            "--no-sandbox", action="store_true", help="do not run the local WeCom sandbox"
        )
        parser.add_argument(
            "--no-live", action="store_true", help="no live activity in the demo company"
        )
        parser.add_argument(
            "--demo-customers", type=int, default=None, help="size of the demo's history"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # A SIGTERM (systemd, `timeout`, a terminal closing) must stop the children too.
        signal.signal(signal.SIGTERM, _interrupt)
        call_command("migrate", interactive=False, verbosity=0)
        children: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
        sandbox_url = ""
        demo = not options["no_demo"] and not options["no_sandbox"]
        if demo:
            # First start: half a year of history, replayed before the sandbox server takes over
            # its state (later starts find the history and skip this).
            sizes = {"customers": options["demo_customers"]} if options["demo_customers"] else {}
            call_command(
                "demo_world",
                sandbox_port=options["sandbox_port"],
                site_url=f"http://{options['addr']}",
                **sizes,
            )
        if not options["no_sandbox"]:
            # The demo company's WeCom is the local sandbox, kept in var/ across restarts.
            port = options["sandbox_port"]
            children.append(
                subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "siyu", "sandbox", "serve", "--port", str(port),
                     "--state", str(settings.VAR_DIR / "sandbox.json")],
                    env=env,
                )
            )  # fmt: skip
            sandbox_url = f"http://127.0.0.1:{port}"
            _wait_for(sandbox_url + "/sandbox/faults")
        if not options["no_demo"]:
            call_command(
                "demo_setup",
                sandbox_url=sandbox_url,
                site_url=f"http://{options['addr']}",
            )
        if not options["no_worker"]:
            for folder in ("queue", "queue-processed"):
                (settings.VAR_DIR / folder).mkdir(parents=True, exist_ok=True)
            children.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable, "-m", "celery", "-A", "siyu.config", "worker",
                        "--beat", "--pool=threads", "--concurrency=4", "--loglevel=INFO",
                        f"--queues={','.join(settings.SIYU_QUEUES)}",
                        f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
                    ],
                    env=env,
                )
            )  # fmt: skip
            if demo and not options["no_live"]:
                children.append(
                    subprocess.Popen(  # noqa: S603
                        [sys.executable, "-m", "siyu", "demo_live", "--sandbox-url", sandbox_url],
                        env=env,
                    )
                )
        self.stdout.write(
            self.style.SUCCESS(f"Siyu is starting at http://{options['addr']}/  (Ctrl-C stops)")
        )
        try:
            web = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "siyu", "runserver", options["addr"], "--noreload"],
                env=env,
            )
            children.append(web)
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    child.kill()
