"""Races for tests: run jobs at the same moment in threads, as concurrent workers would."""

import threading
from collections.abc import Callable

from django.db import connection


def race(jobs: list[Callable[[], object]], *, timeout: float = 10) -> None:
    """Run ``jobs`` in a thread each, released together by a barrier; each thread closes its own
    database connection. Re-raises the first exception a job raised, after all have finished."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=timeout)
            job()
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
