from django.contrib.auth import views as auth_views
from django.urls import path

from siyu.console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("w/", views.workspace, name="workspace"),
    path("settings/org/", views.org, name="org"),
    path(
        "settings/org/<int:member_id>/permissions/", views.org_permissions, name="org_permissions"
    ),
    path("settings/audit/", views.audit, name="audit"),
    path("settings/wecom/", views.wecom, name="wecom"),
    path("settings/events/", views.events, name="events"),
    path("settings/events/<int:delivery_id>/retry/", views.events_retry, name="events_retry"),
    path("settings/webhooks/", views.webhooks, name="webhooks"),
    path(
        "settings/webhooks/<int:endpoint_id>/toggle/", views.webhook_toggle, name="webhook_toggle"
    ),
    path(
        "settings/webhooks/<int:endpoint_id>/delete/", views.webhook_delete, name="webhook_delete"
    ),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]
