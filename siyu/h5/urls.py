from django.urls import path

from siyu.h5 import views

app_name = "h5"

urlpatterns = [
    path("<slug:slug>/oauth/start", views.oauth_start, name="oauth_start"),
    path("<slug:slug>/oauth/callback", views.oauth_callback, name="oauth_callback"),
]
