"""What every customer-facing H5 page does first: find the company behind the URL, send a
visitor not yet identified through WeChat OAuth, and say on a mobile page what went wrong."""

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from siyu.core.models import Tenant


def h5_tenant(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, is_active=True).first()


def h5_tenant_or_404(slug: str) -> Tenant:
    tenant = h5_tenant(slug)
    if tenant is None:
        raise Http404("no such page")
    return tenant


def h5_problem(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "h5/problem.html", {"message": message}, status=status)


def h5_sign_in(request: HttpRequest, slug: str) -> HttpResponseRedirect:
    """To WeChat OAuth and back to this page (its query included)."""
    start = reverse("h5:oauth_start", args=[slug])
    return HttpResponseRedirect(f"{start}?{urlencode({'next': request.get_full_path()})}")
