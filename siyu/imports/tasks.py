"""Background jobs of imports. Thin: they take ids and call services."""

from celery import shared_task

from siyu.imports import services


@shared_task(name="siyu.imports.run", acks_late=True)
def run_import(job_id: int) -> str:
    return services.import_job_run(job_id=job_id)


@shared_task(name="siyu.imports.sweep")
def sweep_imports() -> int:
    return services.import_jobs_sweep()
