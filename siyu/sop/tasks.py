"""Background jobs of the SOP engine. Thin: they call the engine's services."""

from celery import shared_task

from siyu.sop import engine


@shared_task(name="siyu.sop.dispatch")
def dispatch() -> int:
    return engine.sop_dispatch()


@shared_task(name="siyu.sop.schedule")
def schedule() -> int:
    return engine.sop_schedule_tick()
