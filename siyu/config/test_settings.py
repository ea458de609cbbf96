"""Settings for the test suite: the same as production but with test secrets and fast hashing.

Tests run on SQLite by default and on PostgreSQL when ``DATABASE_URL`` names one; the README's
test command runs both.
"""

import os

os.environ.setdefault("SIYU_ENV", "test")

from .settings import *  # noqa: E402,F403
from .settings import DATABASES, VAR_DIR  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = VAR_DIR / "test-static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
CELERY_BROKER_URL = os.environ.get("SIYU_TEST_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "test-celerybeat-schedule")
LANGUAGE_CODE = "zh-hans"

if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3"):
    # A file, not :memory:, as in the embedded deployment: concurrent requests of the live
    # server and worker processes then each get their own connection.
    # One file per test process, so two runs on one machine never share (or delete) it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-siyu-{os.getpid()}.sqlite3")}
