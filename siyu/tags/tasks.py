"""Background jobs of the tags app. Thin: they take ids and call services."""

from celery import shared_task

from siyu.tags import services


@shared_task(name="siyu.tags.push_tag_marks", acks_late=True)
def push_tag_marks(push_id: int) -> str:
    return services.tag_mark_push_send(push_id=push_id)


@shared_task(name="siyu.tags.sweep_pushes")
def sweep_tag_pushes() -> int:
    return services.tag_mark_pushes_sweep()
