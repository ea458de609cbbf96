"""Console pages of mass sends; spread into siyu.console.urls (namespace console)."""

from django.urls import path

from siyu.masssend import views

urlpatterns = [
    path("operate/masssends/", views.mass_sends, name="masssends"),
    path("operate/masssends/new/", views.mass_send_new, name="masssend_new"),
    path("operate/masssends/<int:mass_send_id>/", views.mass_send_detail, name="masssend"),
    path(
        "operate/masssends/<int:mass_send_id>/progress/",
        views.mass_send_progress,
        name="masssend_progress",
    ),
]
