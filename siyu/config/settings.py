"""Settings for Siyu, read from the environment.

``SIYU_ENV`` picks the defaults: ``production`` (the default) refuses to start without real
secrets; ``development`` (what the quick start uses) fills in local ones; tests use
``siyu.config.test_settings``. Everything else is an environment variable listed in the README.
"""

from pathlib import Path

from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from .env import database_from_url, env_bool, env_int, env_json, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("SIYU_VAR_DIR") or BASE_DIR / "var")

SIYU_ENV = env_str("SIYU_ENV", "production") or "production"
if SIYU_ENV not in {"production", "development", "test"}:
    raise ImproperlyConfigured(f"SIYU_ENV={SIYU_ENV!r} must be production, development or test")
DEV_LIKE = SIYU_ENV in {"development", "test"}

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEV_LIKE:
        raise ImproperlyConfigured("SECRET_KEY must be set in production (or SECRET_KEY_FILE)")
    SECRET_KEY = f"siyu-insecure-{SIYU_ENV}-key-not-for-production"  # noqa: S105

# Tenant secrets (corp secrets, callback keys) are encrypted at rest with this key. Kept apart
# from SECRET_KEY so rotating session signing does not make stored secrets unreadable.
ENCRYPTION_KEY = env_str("SIYU_ENCRYPTION_KEY") or ""
if not ENCRYPTION_KEY:
    if not DEV_LIKE:
        raise ImproperlyConfigured("SIYU_ENCRYPTION_KEY must be set in production")
    ENCRYPTION_KEY = SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEV_LIKE else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = (env_str("SITE_URL", "http://127.0.0.1:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "siyu.core",
    "siyu.accounts",
    "siyu.audit",
    "siyu.webhooks",
    "siyu.customers",
    "siyu.tags",
    "siyu.segments",
    "siyu.groupchats",
    "siyu.transfers",
    "siyu.imports",
    "siyu.channels",
    "siyu.fission",
    "siyu.workspace",
    "siyu.shop",
    "siyu.promotions",
    "siyu.analytics",
    "siyu.dashboards",
    "siyu.insights",
    "siyu.content",
    "siyu.masssend",
    "siyu.sop",
    "siyu.team",
    "siyu.h5",
    "siyu.system",
    "siyu.console",
    "siyu.wecom",
    "siyu.sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "siyu.core.middleware.TenantMiddleware",
]

ROOT_URLCONF = "siyu.config.urls"
WSGI_APPLICATION = "siyu.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "siyu.console.context.console",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL") or ""
if not DATABASE_URL:
    # The embedded default: one SQLite file under var/, created on first start.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'siyu.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL, base_dir=BASE_DIR)}
if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3"):
    # Covering indexes (INCLUDE) are PostgreSQL's; SQLite simply builds the plain index.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "siyu" / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"

# Request bodies: WeCom callbacks are small; imports go through file uploads with their own cap.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("SIYU_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEV_LIKE)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SIYU_BEHIND_PROXY", False) else None
)
X_FRAME_OPTIONS = "DENY"

# Jobs. The embedded default keeps the queue in files under var/ so `make start` needs no
# service; production sets CELERY_BROKER_URL to Redis (or RabbitMQ).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
if not DEV_LIKE and CELERY_BROKER_URL == "filesystem://" and not env_bool("SIYU_EMBEDDED"):
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set in production (or SIYU_EMBEDDED=1)")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {
        "data_folder_in": str(VAR_DIR / "queue"),
        "data_folder_out": str(VAR_DIR / "queue"),
        "processed_folder": str(VAR_DIR / "queue-processed"),
        # Without this kombu writes its broadcast exchanges to ./control in the working directory.
        "control_folder": str(VAR_DIR / "queue-control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Lanes that heavy work (imports, exports, mass sends) must not delay get queues of their own:
# the welcome message has 20 s, an add's remark and notification follow within seconds (README
# "Queues"); callbacks are acked and must keep flowing.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "siyu.channels.send_welcome": {"queue": "welcome"},
    "siyu.wecom.welcome_code_arrived": {"queue": "welcome"},
    "siyu.channels.follow_up_add": {"queue": "channels"},
    # What staff see in WeCom right after an add (the code's tags on the customer) must not wait
    # behind enrichment and rollups on the default queue.
    "siyu.tags.push_tag_marks": {"queue": "channels"},
    "siyu.wecom.process_callbacks": {"queue": "callbacks"},
}
SIYU_QUEUES = ["celery", "welcome", "channels", "callbacks"]  # the embedded worker takes all

# Outbound webhooks and the event log's retry policy.
SIYU_EVENT_MAX_ATTEMPTS = env_int("SIYU_EVENT_MAX_ATTEMPTS", 8, minimum=1)
SIYU_WEBHOOK_MAX_ATTEMPTS = env_int("SIYU_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
SIYU_WEBHOOK_TIMEOUT_SECONDS = env_int("SIYU_WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
SIYU_WEBHOOK_ALLOW_PRIVATE = env_bool("SIYU_WEBHOOK_ALLOW_PRIVATE", DEV_LIKE)
# Tracked content links (互动雷达) stop opening after this many days.
SIYU_CONTENT_LINK_DAYS = env_int("SIYU_CONTENT_LINK_DAYS", 180, minimum=1)
SIYU_API_PAGE_MAX = 200
# Demo mode lists the demo logins on the sign-in page; never on in production.
SIYU_DEMO = env_bool("SIYU_DEMO", False) and DEV_LIKE

# WeCom gateway. Rate limits may only be tightened, e.g. {"*": {"per_minute": 600}}.
SIYU_WECOM_RATE_LIMITS = env_json("SIYU_WECOM_RATE_LIMITS", {})
# Where the gateway counts its WeCom calls: the database unless a Redis URL is given (faster
# under bursts: no shared row locks). The prefix keeps installations sharing a Redis apart.
SIYU_WECOM_RATE_REDIS_URL = env_str("SIYU_WECOM_RATE_REDIS_URL")
SIYU_WECOM_RATE_REDIS_PREFIX = env_str("SIYU_WECOM_RATE_REDIS_PREFIX") or "siyu:wecom-rate"
SIYU_WECOM_TIMEOUT_SECONDS = env_int("SIYU_WECOM_TIMEOUT_SECONDS", 5, minimum=1)
SIYU_WECOM_MAX_RETRIES = env_int("SIYU_WECOM_MAX_RETRIES", 3, minimum=0)
# Callbacks older than this are refused as replays (WeCom retries within seconds).
SIYU_CALLBACK_MAX_AGE_SECONDS = env_int("SIYU_CALLBACK_MAX_AGE_SECONDS", 600, minimum=30)
SIYU_MASS_SEND_RULE = env_str("SIYU_MASS_SEND_RULE", "days_in_month") or "days_in_month"
# A mass-send call without a recorded answer is reconciled with WeCom's list after this long
# (well above the client timeout, so the call has certainly ended).
SIYU_MASS_SEND_RECONCILE_SECONDS = env_int("SIYU_MASS_SEND_RECONCILE_SECONDS", 120, minimum=1)
# WeCom's 500 000 contact ways per corp; may only be tightened (a share for other tools).
SIYU_CONTACT_WAY_QUOTA = env_int("SIYU_CONTACT_WAY_QUOTA", 500_000, minimum=1)
# Staff alerts (app messages): at most one per customer per interval, a cap per member and hour;
# a customer silent this many days who interacts again is a "came back" alert.
SIYU_ALERT_CUSTOMER_INTERVAL_SECONDS = env_int(
    "SIYU_ALERT_CUSTOMER_INTERVAL_SECONDS", 600, minimum=0
)
SIYU_ALERT_STAFF_PER_HOUR = env_int("SIYU_ALERT_STAFF_PER_HOUR", 30, minimum=1)
SIYU_ALERT_SILENCE_DAYS = env_int("SIYU_ALERT_SILENCE_DAYS", 14, minimum=1)
# Shop: unpaid orders are cancelled (stock released) after this long; a cart untouched this long
# is abandoned; payment and order webhooks older than the window are refused as replays.
SIYU_SHOP_ORDER_TTL_MINUTES = env_int("SIYU_SHOP_ORDER_TTL_MINUTES", 30, minimum=1)
SIYU_SHOP_CART_ABANDON_MINUTES = env_int("SIYU_SHOP_CART_ABANDON_MINUTES", 60, minimum=1)
SIYU_SHOP_SIGNATURE_MAX_AGE_SECONDS = env_int(
    "SIYU_SHOP_SIGNATURE_MAX_AGE_SECONDS", 300, minimum=30
)

CELERY_BEAT_SCHEDULE = {
    "sweep-event-deliveries": {"task": "siyu.core.sweep_event_deliveries", "schedule": 30.0},
    "sweep-webhooks": {"task": "siyu.webhooks.sweep", "schedule": 30.0},
    "sweep-wecom-inbox": {"task": "siyu.wecom.sweep_inbox", "schedule": 30.0},
    "sweep-tag-pushes": {"task": "siyu.tags.sweep_pushes", "schedule": 60.0},
    "poll-transfers": {"task": "siyu.transfers.poll_open", "schedule": 600.0},
    "sweep-mass-sends": {"task": "siyu.masssend.sweep", "schedule": 30.0},
    "sweep-imports": {"task": "siyu.imports.sweep", "schedule": 300.0},
    "refresh-channel-pools": {"task": "siyu.channels.refresh_pools", "schedule": 60.0},
    "sweep-fission-notices": {"task": "siyu.fission.sweep_notices", "schedule": 60.0},
    "sweep-content": {"task": "siyu.content.sweep", "schedule": 60.0},
    "expire-shop-orders": {"task": "siyu.shop.expire_orders", "schedule": 60.0},
    "expire-groupbuy-teams": {"task": "siyu.promotions.expire_teams", "schedule": 60.0},
    "sweep-workspace-alerts": {"task": "siyu.workspace.sweep_alerts", "schedule": 60.0},
    "settle-departed-tasks": {"task": "siyu.workspace.settle_departed", "schedule": 600.0},
    "dispatch-sop-steps": {"task": "siyu.sop.dispatch", "schedule": 15.0},
    "schedule-sop-triggers": {"task": "siyu.sop.schedule", "schedule": 60.0},
    "reconcile-wecom-nightly": {
        "task": "siyu.wecom.reconcile_all",
        "schedule": crontab(hour=3, minute=17),
    },
    "team-friend-days": {
        "task": "siyu.team.record_friend_days",
        "schedule": crontab(hour=0, minute=23),
    },
    "insights-refresh-scores": {
        "task": "siyu.insights.refresh_scores",
        "schedule": crontab(hour=4, minute=7),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
