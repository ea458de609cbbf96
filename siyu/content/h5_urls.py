from django.urls import path

from siyu.content import h5_views

app_name = "content_h5"

urlpatterns = [
    path("<slug:slug>/c/beacon", h5_views.beacon, name="beacon"),
    path("<slug:slug>/c/<str:token>", h5_views.view, name="view"),
    path("<slug:slug>/c/<str:token>/<str:part>", h5_views.media, name="media"),
]
