"""Console URLs of the workspace (included by siyu.console.urls under the console namespace)."""

from django.urls import path

from siyu.workspace import views

urlpatterns = [
    path("w/", views.mobile, name="workspace"),
    path("w/scripts/", views.script_search, name="workspace_scripts"),
    path("w/tasks/<int:task_id>/done/", views.task_done, name="workspace_task_done"),
    path("w/scripts/<int:script_id>/use/", views.script_use, name="workspace_script_use"),
    path("operate/tasks/", views.task_overview, name="workspace_overview"),
    path("operate/scripts/", views.scripts_page, name="workspace_scripts_manage"),
]
