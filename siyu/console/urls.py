from django.contrib.auth import views as auth_views
from django.urls import path

from siyu.analytics import views as analytics_views
from siyu.channels import views as channel_views
from siyu.console import views
from siyu.content.console_urls import urlpatterns as content_urls
from siyu.customers import views as customer_views
from siyu.dashboards import views as dashboard_views
from siyu.fission import views as fission_views
from siyu.imports import views as import_views
from siyu.insights import views as insights_views
from siyu.masssend.console_urls import urlpatterns as masssend_urls
from siyu.promotions.console_urls import urlpatterns as promotions_urls
from siyu.segments import views as segment_views
from siyu.shop import views as shop_views
from siyu.sop import views as sop_views
from siyu.tags import views as tag_views
from siyu.team.console_urls import urlpatterns as team_urls
from siyu.transfers import views as transfer_views
from siyu.workspace.urls import urlpatterns as workspace_urls

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    *workspace_urls,
    *content_urls,
    *promotions_urls,
    *team_urls,
    *masssend_urls,
    path("customers/", customer_views.customer_list, name="customers"),
    path("customers/<int:customer_id>/", customer_views.customer_detail, name="customer"),
    path(
        "customers/<int:customer_id>/update/",
        customer_views.customer_update,
        name="customer_update",
    ),
    path(
        "customers/<int:customer_id>/merge/", customer_views.customer_merge, name="customer_merge"
    ),
    path("customers/<int:customer_id>/tags/", customer_views.customer_tags, name="customer_tags"),
    path(
        "customers/<int:customer_id>/split/", customer_views.customer_split, name="customer_split"
    ),
    path(
        "customers/merges/<int:merge_id>/undo/",
        customer_views.customer_unmerge,
        name="customer_unmerge",
    ),
    path("settings/lifecycle/", customer_views.lifecycle_settings, name="lifecycle"),
    path("settings/lifecycle/update/", customer_views.lifecycle_update, name="lifecycle_update"),
    path("tags/", tag_views.taxonomy, name="tags"),
    path("tags/rules/", tag_views.rules, name="tag_rules"),
    path("tags/quality/", tag_views.quality, name="tag_quality"),
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
    path("imports/", import_views.imports_page, name="imports"),
    path("imports/upload/", import_views.import_upload, name="import_upload"),
    path("imports/<int:job_id>/", import_views.import_job, name="import_job"),
    path("imports/<int:job_id>/confirm/", import_views.import_confirm, name="import_confirm"),
    path("imports/<int:job_id>/errors/", import_views.import_errors, name="import_errors"),
    path("exports/customers/", import_views.export_download, name="export"),
    path("transfers/onjob/", transfer_views.onjob, name="transfers_onjob"),
    path("transfers/resigned/", transfer_views.resigned, name="transfers_resigned"),
    path("transfers/jobs/", transfer_views.jobs, name="transfer_jobs"),
    path("channels/", channel_views.channel_list, name="channels"),
    path("channels/form/", channel_views.channel_form, name="channel_form"),
    path("channels/<int:code_id>/qr/", channel_views.channel_qr, name="channel_qr"),
    path("segments/", segment_views.segments_page, name="segments"),
    path("segments/count/", segment_views.segment_count_fragment, name="segment_count"),
    # sop
    path("operate/sops/", sop_views.sop_list, name="sops"),
    path("operate/sops/new/", sop_views.sop_new, name="sop_new"),
    path("operate/sops/<int:sop_id>/", sop_views.sop_detail, name="sop"),
    path("operate/sops/<int:sop_id>/edit/", sop_views.sop_edit, name="sop_edit"),
    path("acquire/fission/", fission_views.campaign_list, name="fission_campaigns"),
    path("acquire/fission/new/", fission_views.campaign_new, name="fission_campaign_new"),
    path(
        "acquire/fission/<int:campaign_id>/",
        fission_views.campaign_detail,
        name="fission_campaign",
    ),
    path("data/channels/", analytics_views.channels_page, name="analytics_channels"),
    path("data/channels/export/", analytics_views.channels_export, name="analytics_export"),
    path("data/channels/spend/", analytics_views.spend_create, name="analytics_spend"),
    path("data/churn/", insights_views.churn_page, name="insights_churn"),
    path(
        "data/churn/<int:record_id>/reason/",
        insights_views.churn_reason,
        name="insights_churn_reason",
    ),
    path("data/at-risk/", insights_views.at_risk_page, name="insights_at_risk"),
    path("data/value/", insights_views.value_page, name="insights_value"),
    path("dashboard/", dashboard_views.dashboard_page, name="dashboard"),
    path("dashboard/export/", dashboard_views.dashboard_export, name="dashboard_export"),
    path("dashboard/goals/", dashboard_views.goals_page, name="goals"),
    path("dashboard/goals/new/", dashboard_views.goal_create, name="goal_create"),
    path("dashboard/goals/log/", dashboard_views.goal_log, name="goal_log"),
    # shop
    path("convert/products/", shop_views.products, name="shop_products"),
    path("convert/products/<int:product_id>/", shop_views.product, name="shop_product"),
    path("convert/orders/", shop_views.orders, name="shop_orders"),
    path("convert/orders/<int:order_id>/", shop_views.order, name="shop_order"),
    path(
        "convert/orders/<int:order_id>/refund/", shop_views.order_refund, name="shop_order_refund"
    ),
    path("convert/my-shop/", shop_views.links, name="shop_links"),
    path("settings/shop/", shop_views.shop_settings, name="shop_settings"),
    path("settings/shop/import/", shop_views.order_import, name="shop_import"),
]
