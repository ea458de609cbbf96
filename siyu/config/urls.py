from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from siyu.config.api import api
from siyu.wecom.callback.receiver import callback


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz),
    path("api/v1/", api.urls),
    path("wecom/callback/<slug:slug>/", callback, name="wecom-callback"),
    path("h5/", include("siyu.h5.urls")),
    path("h5/", include("siyu.fission.h5_urls")),
    path("h5/", include("siyu.shop.h5_urls")),
    path("h5/", include("siyu.promotions.h5_urls")),
    path("shop/hooks/", include("siyu.shop.urls")),
    path("h5/", include("siyu.content.h5_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("siyu.console.urls")),
]
