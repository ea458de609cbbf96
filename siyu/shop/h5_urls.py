from django.urls import path

from siyu.shop import h5_views

app_name = "shop_h5"

urlpatterns = [
    path("<slug:slug>/shop/s/<str:token>/", h5_views.shop_home, name="home"),
    path("<slug:slug>/shop/s/<str:token>/p/<int:product_id>/", h5_views.product, name="product"),
    path("<slug:slug>/shop/cart/", h5_views.cart, name="cart"),
    path("<slug:slug>/shop/checkout/", h5_views.checkout, name="checkout"),
    path("<slug:slug>/shop/orders/<str:number>/", h5_views.order_page, name="order"),
    path("<slug:slug>/shop/orders/<str:number>/pay/", h5_views.order_pay, name="order_pay"),
]
