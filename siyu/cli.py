"""The ``siyu`` command: Django's management command with Siyu's settings."""

import os
import sys

# Local tools that neither serve nor store production data: they run without production
# secrets, so a newcomer (or someone debugging a callback on a laptop) needs no setup.
LOCAL_TOOLS = {("sandbox",), ("wecom", "decrypt"), ("wecom", "encrypt"), ("clv", "fit")}


def main() -> None:
    args = sys.argv[1:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
    if tuple(args[:1]) in LOCAL_TOOLS or tuple(args[:2]) in LOCAL_TOOLS:
        os.environ.setdefault("SIYU_ENV", "development")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["siyu", *args])
    except ImproperlyConfigured as exc:
        # A configuration mistake deserves one clear line, not a traceback.
        sys.exit(f"siyu: configuration error: {exc} (for a local try: SIYU_ENV=development)")


if __name__ == "__main__":
    main()
