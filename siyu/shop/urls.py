"""Endpoints outside systems call: payment notifications and other shops' order webhooks."""

from django.urls import path

from siyu.shop import hooks

app_name = "shop_hooks"

urlpatterns = [
    path("<slug:slug>/pay/notify", hooks.payment_notify, name="payment_notify"),
    path("<slug:slug>/orders/<slug:shop_key>", hooks.order_webhook, name="order_webhook"),
]
