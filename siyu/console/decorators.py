"""The console's single entry check: signed in, a staff member, allowed; errors become pages."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from siyu.accounts.permissions import Action, require
from siyu.core.errors import NotFound, PermissionDenied, SiyuError

ConsoleView = Callable[..., HttpResponse]


def console_page(action: Action) -> Callable[[ConsoleView], ConsoleView]:
    def decorate(view: ConsoleView) -> ConsoleView:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            staff = getattr(request, "staff", None)
            try:
                require(staff, action)
                return view(request, staff, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from exc
            except PermissionDenied as exc:
                return render(request, "console/403.html", {"reason": exc.message}, status=403)
            except SiyuError as exc:
                # Form posts: say what was wrong and go back; nothing was changed.
                messages.error(request, exc.message)
                return redirect(request.headers.get("Referer") or request.path)

        return wrapper

    return decorate
