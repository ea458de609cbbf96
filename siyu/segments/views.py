"""Console page 管理 → 客户分群: saved segments, and an editor with a live count (HTMX).

Everyone may open it and count within their data scope; saving and deleting need
``SEGMENTS_MANAGE``. A bad expression is shown with its caret under the mistake.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can
from siyu.console.decorators import console_page
from siyu.segments import selectors, services
from siyu.segments.errors import SegmentError


@console_page(Action.CUSTOMERS_VIEW)
def segments_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        # Errors (SegmentError included) become a message via console_page; nothing changes.
        if request.POST.get("op") == "delete":
            services.saved_segment_delete(actor=staff, segment_id=int(request.POST["segment_id"]))
            messages.success(request, _("已删除分群"))
        else:
            services.saved_segment_create(
                actor=staff,
                name=request.POST.get("name", ""),
                expression=request.POST.get("expression", ""),
                description=request.POST.get("description", ""),
            )
            messages.success(request, _("已保存分群"))
        return redirect("console:segments")
    context = {
        "segments": selectors.saved_segment_list(actor=staff),
        "can_manage": can(staff, Action.SEGMENTS_MANAGE),
        "expression": request.GET.get("expression", ""),
    }
    return render(request, "segments/segments.html", context)


@console_page(Action.CUSTOMERS_VIEW)
def segment_count_fragment(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    """The live count under the editor: a number, or the parse error with its caret."""
    expression = request.GET.get("expression", "")[:2000]
    context: dict[str, object] = {"expression": expression}
    if expression.strip():
        try:
            context["result"] = selectors.segment_count(expression=expression, actor=staff)
        except SegmentError as exc:
            context["error"] = exc
    return render(request, "segments/_count.html", context)
