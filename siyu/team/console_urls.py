from django.urls import path

from siyu.team import views

urlpatterns = [
    path("manage/assets/", views.assets, name="team_assets"),
    path("manage/assets/inventory/", views.inventory, name="team_inventory"),
    path("manage/assets/<int:asset_id>/", views.asset_detail, name="team_asset"),
    path("manage/assets/<int:asset_id>/action/", views.asset_action, name="team_asset_action"),
    path("data/performance/", views.performance, name="team_performance"),
    path("data/performance/export/", views.performance_export, name="team_performance_export"),
]
