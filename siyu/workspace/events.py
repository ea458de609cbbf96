"""Workspace events: a member finished a task."""

from django.utils.translation import gettext_lazy as _

from siyu.core.events import event_type

TASK_DONE = event_type("task.done", _("员工完成任务"))
