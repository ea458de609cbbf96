from django.apps import AppConfig, apps
from django.utils.module_loading import module_has_submodule
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "siyu.core"
    verbose_name = _("核心")

    def ready(self) -> None:
        # Django's development server (runserver in the embedded start, the tests' live server)
        # writes headers and body separately; with Nagle's algorithm every response then waits
        # ~40 ms for the client's delayed ACK. socketserver has a switch for exactly this.
        from django.core.servers.basehttp import WSGIRequestHandler

        WSGIRequestHandler.disable_nagle_algorithm = True

        # Collect every app's event types (events.py) and subscribers (events.py, or
        # subscribers.py when they need the app's services) before the first event is written.
        from importlib import import_module

        for module in ("events", "subscribers"):
            for config in apps.get_app_configs():
                if config.name.startswith("siyu.") and module_has_submodule(config.module, module):
                    import_module(f"{config.name}.{module}")
