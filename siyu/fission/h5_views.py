"""The campaign's H5 pages, opened in WeChat: join, see my poster and my progress."""

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
)
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from siyu.core.errors import InvalidInput
from siyu.core.tenancy import tenant_context
from siyu.fission import selectors, services
from siyu.fission.models import Campaign, CampaignKind
from siyu.h5.pages import h5_problem, h5_sign_in, h5_tenant_or_404
from siyu.h5.services import h5_visitor


@require_GET
def campaign_page(request: HttpRequest, slug: str, campaign_id: int) -> HttpResponse:
    """Identify the visitor (WeChat OAuth), make them a participant, show poster and progress."""
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            return h5_problem(request, "活动不存在", 404)
        try:
            participant = services.participant_join(campaign=campaign, customer=customer)
        except InvalidInput as exc:
            return h5_problem(request, exc.message, 400)
        context = {
            "campaign": campaign,
            "participant": participant,
            "progress": selectors.participant_progress(participant=participant),
            "group": selectors.current_group(campaign=campaign)
            if campaign.kind == CampaignKind.GROUP
            else None,
            "poster_url": reverse("fission_h5:poster", args=[slug, campaign_id])
            if participant.poster
            else "",
        }
        return render(request, "fission/h5_campaign.html", context)


@require_GET
def poster(request: HttpRequest, slug: str, campaign_id: int) -> HttpResponseBase:
    """The visitor's own poster; nobody else's is reachable by guessing ids."""
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        raise Http404("no poster")
    with tenant_context(tenant):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        participant = (
            selectors.participant_for(campaign=campaign, customer=customer) if campaign else None
        )
        if participant is None or not participant.poster:
            raise Http404("no poster")
        return FileResponse(participant.poster.open("rb"), content_type="image/png")
