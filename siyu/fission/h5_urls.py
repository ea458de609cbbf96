from django.urls import path

from siyu.fission import h5_views

app_name = "fission_h5"

urlpatterns = [
    path("<slug:slug>/fission/<int:campaign_id>/", h5_views.campaign_page, name="campaign"),
    path("<slug:slug>/fission/<int:campaign_id>/poster.png", h5_views.poster, name="poster"),
]
