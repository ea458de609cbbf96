"""Console routes of promotions, spliced into the ``console`` namespace."""

from django.urls import path

from siyu.promotions import views

urlpatterns = [
    path("convert/coupons/", views.coupon_templates, name="promotions_coupons"),
    path("convert/coupons/grants/", views.coupon_grants, name="promotions_coupon_grants"),
    path(
        "convert/coupons/redemptions/",
        views.coupon_redemptions,
        name="promotions_coupon_redemptions",
    ),
    path("convert/groupbuys/", views.groupbuys, name="promotions_groupbuys"),
    path("convert/groupbuys/teams/", views.groupbuy_teams, name="promotions_groupbuy_teams"),
    path("convert/commissions/", views.commissions, name="promotions_commissions"),
    path(
        "convert/commissions/rules/",
        views.commission_rules,
        name="promotions_commission_rules",
    ),
]
