"""Console pages of the content library; spread into siyu.console.urls (namespace console)."""

from django.urls import path

from siyu.content import views

urlpatterns = [
    path("operate/content/", views.library, name="content"),
    path("operate/content/new/", views.item_form, name="content_new"),
    path("operate/content/radar/", views.staff_radar, name="content_staff_radar"),
    path("operate/content/<int:item_id>/", views.item_radar, name="content_item"),
    path("operate/content/<int:item_id>/edit/", views.item_form, name="content_edit"),
]
