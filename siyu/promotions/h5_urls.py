from django.urls import path

from siyu.promotions import h5_views

app_name = "promotions_h5"

urlpatterns = [
    path("<slug:slug>/coupons/<int:template_id>/", h5_views.coupon_claim_page, name="claim"),
    path("<slug:slug>/groupbuys/<int:campaign_id>/", h5_views.groupbuy_page, name="groupbuy"),
    path(
        "<slug:slug>/groupbuys/teams/<int:team_id>/",
        h5_views.groupbuy_team_page,
        name="groupbuy_team",
    ),
]
