"""Settings, all from the environment (django-environ).

`.env` at the repository root is read first (``make demo`` writes it); real environment
variables win over it. Development defaults are safe for loopback use only: with
``DEBUG`` off, every secret must be given explicitly or start-up fails listing what is missing.
"""
from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# Secrets that production must set itself. The development values only ever apply with DEBUG on.
_DEV_SECRETS = {
    "SECRET_KEY": "dev-insecure-secret-key",
    # Token digests are HMAC(pepper, token): a database dump alone cannot be brute-forced.
    "TOKEN_PEPPER": "dev-insecure-token-pepper",
    # Fernet key(s), comma-separated, newest first: ACME account keys and EAB keys at rest.
    "ENCRYPTION_KEYS": "ZGV2LWluc2VjdXJlLWVuY3J5cHRpb24ta2V5LTMyYiE=",
    "PDNS_API_KEY": "secret",
}
_missing = [name for name in _DEV_SECRETS if not DEBUG and not env.str(name, default="")]
if _missing:
    raise ImproperlyConfigured(
        "Missing required settings (DEBUG is off): " + ", ".join(_missing)
        + ". Set them in the environment or in .env (see README, Configuration)."
    )
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRETS["SECRET_KEY"])
TOKEN_PEPPER = env.str("TOKEN_PEPPER", default=_DEV_SECRETS["TOKEN_PEPPER"])
# Each web process keeps a token's row this long (0: read it on every request); a token
# revoked in the admin stops working within this delay.
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", default=5)
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[_DEV_SECRETS["ENCRYPTION_KEYS"]])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django_dramatiq",  # first, as its docs ask
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served by us, not from a CDN
    "tenants",
    "dns_provisioning",
    "signing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csrproxy.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csrproxy.middleware.DatabaseUnavailableMiddleware",
    "csrproxy.middleware.AdminLoginGuardMiddleware",
]

ROOT_URLCONF = "csrproxy.urls"
WSGI_APPLICATION = "csrproxy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://csrproxy:csrproxy@127.0.0.1:5432/csrproxy"
    )
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared by every web process (throttles, admin login guard): the database by default.
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://csrproxy_cache")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# Bodies larger than this are refused before parsing (a CSR is a few KiB): 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024)
# Admin login: after this many failures for one username or one client address within the
# window, further attempts are refused until the window has passed.
ADMIN_LOGIN_MAX_FAILURES = env.int("ADMIN_LOGIN_MAX_FAILURES", default=5)
ADMIN_LOGIN_WINDOW_SECONDS = env.int("ADMIN_LOGIN_WINDOW_SECONDS", default=900)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["csrproxy.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "csrproxy.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"legacy_sign": env.str("LEGACY_SIGN_RATE", default="30/min")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CSR Proxy API",
    "DESCRIPTION": "Certificates for installations that keep their own private keys.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Dramatiq: RabbitMQ in production and CI; the URL decides. ------------------------------
DRAMATIQ_BROKER_URL = env.str("DRAMATIQ_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672/")
# One queue per deployment: tests use their own so a running demo worker never eats their work.
DRAMATIQ_QUEUE = env.str("DRAMATIQ_QUEUE", default="csrproxy")
# Publisher confirms make every send wait for RabbitMQ's disk write. Off by default: the
# database is the record of every request and its next due time, a message only wakes a
# worker up, and the sweeper (run_sweeper) re-sends any request overdue by
# SWEEPER_GRACE_SECONDS. A message lost in a broker crash costs that delay, never a request.
# The bench measured ~30% more submissions per second without them.
DRAMATIQ_CONFIRM_DELIVERY = env.bool("DRAMATIQ_CONFIRM_DELIVERY", default=False)
DRAMATIQ_BROKER = {
    "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
    "OPTIONS": {"url": DRAMATIQ_BROKER_URL, "confirm_delivery": DRAMATIQ_CONFIRM_DELIVERY},
    "MIDDLEWARE": [
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.Callbacks",
        "dramatiq.middleware.Retries",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}

# --- DNS: the base zone delegated to PowerDNS, and how to reach PowerDNS. ---------------------
CSRPROXY_BASE_ZONE = env.str("CSRPROXY_BASE_ZONE", default="csrproxy.test").rstrip(".").lower()
PDNS_API_URL = env.str("PDNS_API_URL", default="http://127.0.0.1:8081")
PDNS_API_KEY = env.str("PDNS_API_KEY", default=_DEV_SECRETS["PDNS_API_KEY"])
PDNS_SERVER_ID = env.str("PDNS_SERVER_ID", default="localhost")
# Where the challenge value must be visible before we answer (host:port, comma-separated).
PDNS_DNS_SERVERS = env.list("PDNS_DNS_SERVERS", default=["127.0.0.1:5353"])
# NS names written into zones this service creates.
PDNS_NAMESERVERS = env.list("PDNS_NAMESERVERS", default=[])
CHALLENGE_TXT_TTL = env.int("CHALLENGE_TXT_TTL", default=60)

# --- ACME: the default account (more can be added in the admin). ----------------------------
ACME_DIRECTORY_URL = env.str("ACME_DIRECTORY_URL", default="https://127.0.0.1:14000/dir")
ACME_CONTACT_EMAIL = env.str("ACME_CONTACT_EMAIL", default="")
ACME_EAB_KID = env.str("ACME_EAB_KID", default="")
ACME_EAB_HMAC_KEY = env.str("ACME_EAB_HMAC_KEY", default="")
# CA bundle that signs the directory's TLS certificate (empty: the system's trust store).
ACME_TLS_CA = env.str("ACME_TLS_CA", default="")

# --- Signing flow timings. -----------------------------------------------------------------
# A request not finished this long after submission ends `invalid` (reason: deadline).
SIGNING_DEADLINE_SECONDS = env.int("SIGNING_DEADLINE_SECONDS", default=3600)
# How long a worker owns a request between two writes of it (renewed at every step change).
# Keep it above a step's CA calls (30 s timeout each): a run overtaken by another worker
# stops at its next write, but may already have repeated a call to the CA. A crashed
# worker's requests are picked up again this long after the crash.
SIGNING_LEASE_SECONDS = env.int("SIGNING_LEASE_SECONDS", default=60)
# A resubmitted CSR (same key, same names) gets the issued certificate back, without a new
# order, while it has at least this many days left.
CERTIFICATE_REUSE_MIN_DAYS = env.int("CERTIFICATE_REUSE_MIN_DAYS", default=30)
# Window of the per-tenant cap (Tenant.max_certificates_per_window).
TENANT_QUOTA_WINDOW_DAYS = env.int("TENANT_QUOTA_WINDOW_DAYS", default=7)
# The sweeper re-sends a request this long past its due time (its message was lost).
SWEEPER_GRACE_SECONDS = env.int("SWEEPER_GRACE_SECONDS", default=10)
# Fault-injection tests only: a worker kills itself (SIGKILL) on entering this step.
FAILPOINT_KILL_ENTERING_STEP = env.str("CSRPROXY_FAILPOINT_KILL_ENTERING_STEP", default="")
# How long POST /v1/sign waits for the chain before answering 504 with the request's id.
LEGACY_SIGN_WAIT_SECONDS = env.int("LEGACY_SIGN_WAIT_SECONDS", default=120)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # The acme library logs whole JWS bodies at DEBUG: never let that through.
        "acme": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "pika": {"level": "WARNING"},
    },
}
