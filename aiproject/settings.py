"""The one settings module: every deployment difference is an environment variable, from the
process or the file named by ``ENV_FILE`` (``.env.example`` documents them all)."""

import importlib.util
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import global_settings

from core.redis_clients import is_cluster_url, parse_sentinels

from .settings_env import (
    bounded,
    check,
    choice,
    env,
    host_port,
    limit,
    mailers,
    networks,
    positive_int,
    read_env_file,
    required,
    seconds,
    strict_bool,
    time_zone,
)
from .settings_redis import caches, channel_layers

BASE_DIR = Path(__file__).resolve().parent.parent

ENV_FILE = read_env_file(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = required("SECRET_KEY", debug=DEBUG, dev_default="django-insecure-development-only-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first, so that runserver serves ASGI and streams
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "core",
    "analytics",
    "analytics.alerts",  # sub-apps of analytics, above it (docs/architecture.md)
    "analytics.quotas",
    "experiments",
    "chat",
]
# Development tools (the simulator's `llm_simulator` command) wherever the package is: a checkout
# and the simulator's image; the production image leaves devtools/ out.
if importlib.util.find_spec("devtools") is not None:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "core.health.HealthCheckMiddleware",
    "analytics.middleware.RequestLogMiddleware",
    # Django's middleware with its hooks on the event loop (a thread hand-off each otherwise).
    "core.middleware.SecurityMiddleware",
    "core.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",
    "core.middleware.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "core.middleware.MessageMiddleware",
    "core.middleware.XFrameOptionsMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aiproject.urls"
# API clients get a JSON error for a missing CSRF token, pages get Django's page.
CSRF_FAILURE_VIEW = "chat.views.csrf_failure"
ASGI_APPLICATION = "aiproject.asgi.application"

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
                "django.template.context_processors.csp",
                "chat.context_processors.chat_settings",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Unset DATABASE_URL means SQLite beside manage.py. Under ASGI, persistent connections leak one
# per discarded request thread, so CONN_MAX_AGE stays 0 and PostgreSQL uses psycopg's pool.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
_db["CONN_MAX_AGE"] = 0
# How an outage fails fast and is probed: docs/deploy.md section 8, "Outages".
DB_CONNECT_TIMEOUT_SECONDS = env.float("DB_CONNECT_TIMEOUT_SECONDS", default=2.0)
DB_OUTAGE_PROBE_SECONDS = env.float("DB_OUTAGE_PROBE_SECONDS", default=1.0)
for _name in ("DB_CONNECT_TIMEOUT_SECONDS", "DB_OUTAGE_PROBE_SECONDS"):
    _value = globals()[_name]
    check(_value > 0, f"{_name} must be a positive number of seconds, not {_value}.")
# How long a statement may take (0: no bound) in a web process, and in a job (manage.py's
# commands: migrate, monitor, reports): docs/deploy.md section 8, "Statement timeout".
DB_STATEMENT_TIMEOUT_SECONDS = bounded("DB_STATEMENT_TIMEOUT_SECONDS", 5.0, at_least=0)
DB_JOB_STATEMENT_TIMEOUT_SECONDS = bounded("DB_JOB_STATEMENT_TIMEOUT_SECONDS", 0.0, at_least=0)
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["ENGINE"] = "core.postgresql"  # Django's backend, failing fast during an outage
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=30),
        "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
    }
    # libpq's (whole seconds, at least 2): a dead host fails in this long, not the OS's minutes.
    _db["OPTIONS"].setdefault("connect_timeout", max(round(DB_CONNECT_TIMEOUT_SECONDS), 2))
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file (the test servers' processes must see it), one per test run.
    _db["TEST"] = {"NAME": str(BASE_DIR / f"test_db_{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and cache ---------------------------------------------------------
# Unset REDIS_URL means the in-memory channel layer and local-memory cache: one process only.
# At scale (docs/deploy.md "Redis at scale"): the channel layer over several instances, Sentinel,
# the quota counters on a Redis Cluster.
REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="aiproject")
# Sentinels (host:port,...): every Redis URL's host is then the master's name, e.g. mymaster.
REDIS_SENTINELS = parse_sentinels(env.str("REDIS_SENTINELS", default=""))
check(not REDIS_SENTINELS or bool(REDIS_URL), "REDIS_SENTINELS is set but REDIS_URL is not")
# The channel layer's instances (channels and groups hashed over them); default: REDIS_URL.
CHANNEL_REDIS_URLS = [url for url in env.list("CHANNEL_REDIS_URLS", default=[]) if url] or (
    [REDIS_URL] if REDIS_URL else []
)
check(
    not CHANNEL_REDIS_URLS or bool(REDIS_URL),
    "CHANNEL_REDIS_URLS is set but REDIS_URL is not (the cache and quotas need it)",
)
check(
    not any(map(is_cluster_url, [REDIS_URL, *CHANNEL_REDIS_URLS])),
    "Only QUOTA_REDIS_URL may name a Redis Cluster (redis+cluster://): the channel layer and "
    "the cache need a plain Redis or Sentinel",
)
CHANNEL_LAYERS = channel_layers(
    urls=CHANNEL_REDIS_URLS, sentinels=REDIS_SENTINELS, prefix=CHANNEL_LAYER_PREFIX
)
CACHES = caches(url=REDIS_URL, sentinels=REDIS_SENTINELS, prefix=CHANNEL_LAYER_PREFIX)

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Only the test suite sets it (a fast hasher, conftest.py); deployments keep PBKDF2.
PASSWORD_HASHERS = env.list("PASSWORD_HASHERS", default=global_settings.PASSWORD_HASHERS)
# Login throttling per (username, client address), django-axes: docs/deploy.md "Login throttling".
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = positive_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = positive_int("LOGIN_LOCKOUT_SECONDS", 900)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Hammering a locked login writes nothing (axes would update the row on every refused attempt).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # failures only: no row per successful login
AXES_LOCKOUT_CALLABLE = "chat.views.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"
# The proxies in front (e.g. nginx's docker network): only they may set X-Forwarded-For.
TRUSTED_PROXIES = networks("TRUSTED_PROXIES")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
# Days in reports, rollups and quotas are counted in this zone.
REPORTING_TIME_ZONE = time_zone("REPORTING_TIME_ZONE", "UTC")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# The app serves /static/ itself only in development and tests; production puts nginx in front.
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
# Django's database sessions, loaded with compiled SQL (core/sessions.py).
SESSION_ENGINE = "core.sessions"
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The debug page and error emails hide credentials inside URLs too (REDIS_URL, AI_BASE_URL, ...).
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.error_reports.SecretScrubbingFilter"
# No inline scripts or styles anywhere, and nothing from another origin.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}

# --- The upstream (any OpenAI-compatible API) ------------------------------------------------
# Without AI_API_KEY, development talks to the simulator (manage.py llm_simulator).
AI_SIMULATOR_PORT = env.int("AI_SIMULATOR_PORT", default=8001)
AI_USING_SIMULATOR = not env.str("AI_API_KEY", default="")
AI_API_KEY = required("AI_API_KEY", debug=DEBUG, dev_default="simulator-key")
AI_BASE_URL = env.str(
    "AI_BASE_URL",
    default=(
        f"http://127.0.0.1:{AI_SIMULATOR_PORT}/v1"
        if AI_USING_SIMULATOR
        else "https://api.openai.com/v1"
    ),
)
AI_MODEL = env.str("AI_MODEL", default="gpt-4o-mini")
AI_TITLE_MODEL = env.str("AI_TITLE_MODEL", default="") or AI_MODEL
# The model that scores answers in `manage.py eval_prompts` (default: AI_MODEL).
AI_JUDGE_MODEL = env.str("AI_JUDGE_MODEL", default="") or AI_MODEL
AI_CONNECT_TIMEOUT_SECONDS = env.float("AI_CONNECT_TIMEOUT_SECONDS", default=5.0)
# Longest silence between two chunks of a stream before it counts as stalled.
AI_STREAM_IDLE_TIMEOUT_SECONDS = env.float("AI_STREAM_IDLE_TIMEOUT_SECONDS", default=30.0)
AI_REQUEST_TIMEOUT_SECONDS = env.float("AI_REQUEST_TIMEOUT_SECONDS", default=60.0)
# The SDK's HTTP transport: aiohttp (less CPU per streamed reply, docs/performance.md) or httpx.
AI_HTTP_CLIENT = choice("AI_HTTP_CLIENT", "aiohttp", ("aiohttp", "httpx"))
# Retries of transient faults before any text reached the user (exponential backoff + jitter).
AI_MAX_RETRIES = env.int("AI_MAX_RETRIES", default=2)
AI_RETRY_BASE_DELAY_SECONDS = env.float("AI_RETRY_BASE_DELAY_SECONDS", default=0.5)
AI_RETRY_MAX_DELAY_SECONDS = env.float("AI_RETRY_MAX_DELAY_SECONDS", default=20.0)
# Some OpenAI-compatible servers reject stream_options or never send a finish_reason.
AI_STREAM_USAGE = env.bool("AI_STREAM_USAGE", default=True)
AI_REQUIRE_FINISH_REASON = env.bool("AI_REQUIRE_FINISH_REASON", default=True)
AI_TEMPERATURE = env.float("AI_TEMPERATURE", default=0.7)
AI_MAX_OUTPUT_TOKENS = env.int("AI_MAX_OUTPUT_TOKENS", default=1024)
AI_SYSTEM_PROMPT = env.str(
    "AI_SYSTEM_PROMPT",
    default="You are a helpful assistant. Answer in Markdown.",
)

# The prompt whose versions and experiments serve chat replies (see experiments.PromptVersion).
CHAT_PROMPT_NAME = env.str("CHAT_PROMPT_NAME", default="chat-system")

# --- Chat -----------------------------------------------------------------------------------
CHAT_SIGNUP_ENABLED = env.bool("CHAT_SIGNUP_ENABLED", default=False)
CHAT_MAX_MESSAGE_CHARS = env.int("CHAT_MAX_MESSAGE_CHARS", default=16000)
# History sent upstream is trimmed from the oldest message to fit this many (estimated) tokens.
CHAT_CONTEXT_TOKEN_BUDGET = env.int("CHAT_CONTEXT_TOKEN_BUDGET", default=6000)
# How often a streaming reply's partial text is saved (also the runner's heartbeat).
CHAT_PERSIST_INTERVAL_SECONDS = env.float("CHAT_PERSIST_INTERVAL_SECONDS", default=0.5)
# Deltas to other processes are batched this often (a Redis round trip per token costs more CPU).
CHAT_PUBLISH_INTERVAL_SECONDS = env.float("CHAT_PUBLISH_INTERVAL_SECONDS", default=0.05)
# Prices, limits and what serves each prompt are cached per process this long (0: never).
CONFIG_CACHE_SECONDS = env.float("CONFIG_CACHE_SECONDS", default=5.0)
# Threads for the chat's database calls (below DB_POOL_MAX_SIZE): more threads fight the event
# loop for the GIL; raise it only for a distant database (docs/deploy.md "Scaling `web`").
CHAT_DB_THREADS = bounded("CHAT_DB_THREADS", 1, cast=int, at_least=1)
# Request threads kept for reuse (core/handlers.py) rather than started anew per request; an
# open event stream holds none.
ASGI_IDLE_REQUEST_THREADS = bounded("ASGI_IDLE_REQUEST_THREADS", 64, cast=int, at_least=0)
# A pending/streaming reply whose runner has not saved for this long is marked interrupted.
CHAT_STALE_AFTER_SECONDS = env.float("CHAT_STALE_AFTER_SECONDS", default=30.0)
# ... and only after that much more time without a save from its runner (which, alive through a
# database outage, gets the first word once the database is back).
CHAT_SWEEP_GRACE_SECONDS = bounded("CHAT_SWEEP_GRACE_SECONDS", 10.0, at_least=0, at_most=86400)
# A reply's end whose write fails (a database outage) is kept in memory and retried this long.
CHAT_FINISH_RETRY_SECONDS = bounded("CHAT_FINISH_RETRY_SECONDS", 300.0, at_least=0, at_most=86400)
# SIGTERM drains: replies in progress get CHAT_DRAIN_SECONDS to end, then the rest stop within the
# grace; a stopper must wait longer than the sum (docs/deploy.md, "the drain").
CHAT_DRAIN_SECONDS = seconds("CHAT_DRAIN_SECONDS", 60.0)
CHAT_SHUTDOWN_GRACE_SECONDS = seconds("CHAT_SHUTDOWN_GRACE_SECONDS", 8.0)
SSE_PING_SECONDS = env.float("SSE_PING_SECONDS", default=15.0)
# Open streams per user in one process; one more gets 429 too_many_streams. Per process on
# purpose: it guards the process's memory and connections (docs/architecture.md).
CHAT_MAX_STREAMS_PER_USER = bounded("CHAT_MAX_STREAMS_PER_USER", 8, cast=int, at_least=1)
# A stream following another process's silent reply checks its state in the database this often
# (every second while Redis is away), to see a lost end or a dead runner.
CHAT_FOLLOWER_CHECK_SECONDS = bounded("CHAT_FOLLOWER_CHECK_SECONDS", 5.0, above=0)
# A stream whose reader stopped reading this long is closed (its unsent text not held; daphne only).
SSE_WRITE_TIMEOUT_SECONDS = bounded("SSE_WRITE_TIMEOUT_SECONDS", 30.0, above=0)

# --- Analytics ------------------------------------------------------------------------------
# Per-user defaults (overridable per user and per group in the admin) and the global daily cap;
# see docs/quotas.md. Days and months are those of REPORTING_TIME_ZONE.
QUOTA_REQUESTS_PER_MINUTE = limit("QUOTA_REQUESTS_PER_MINUTE", 20)
QUOTA_TOKENS_PER_DAY = limit("QUOTA_TOKENS_PER_DAY", 200_000)
QUOTA_COST_PER_DAY_USD = limit("QUOTA_COST_PER_DAY_USD", Decimal("1.00"), Decimal)
QUOTA_COST_PER_MONTH_USD = limit("QUOTA_COST_PER_MONTH_USD", Decimal("20.00"), Decimal)
AI_DAILY_COST_CAP_USD = limit("AI_DAILY_COST_CAP_USD", None, Decimal)
QUOTA_BACKEND = choice("QUOTA_BACKEND", "redis" if REDIS_URL else "database", ("redis", "database"))
check(QUOTA_BACKEND != "redis" or REDIS_URL, "QUOTA_BACKEND is 'redis' but REDIS_URL is not set")
# The quota counters' Redis (empty: REDIS_URL); redis+cluster://HOST:PORT for a Redis Cluster.
QUOTA_REDIS_URL = env.str("QUOTA_REDIS_URL", default="")
QUOTA_RESERVATION_TTL_SECONDS = env.float("QUOTA_RESERVATION_TTL_SECONDS", default=120.0)

# Raw AI call rows older than this are deleted by `monitor` (rollups are kept).
ANALYTICS_RAW_RETENTION_DAYS = env.int("ANALYTICS_RAW_RETENTION_DAYS", default=90)
# How often `monitor` refreshes the rollups the dashboard reads and evaluates the alert rules.
ANALYTICS_ROLLUP_SECONDS = bounded("ANALYTICS_ROLLUP_SECONDS", 60.0, at_least=1, at_most=3600)
# A new analytics API token expires after this many days unless its creator picks another date
# (at most 366 days ahead); requests per minute one token (or one staff session) may make to the
# analytics API, counted in the cache (none = no limit). See docs/analytics.md "The JSON API".
ANALYTICS_API_TOKEN_DAYS = bounded(
    "ANALYTICS_API_TOKEN_DAYS", 90, cast=int, at_least=1, at_most=366
)
ANALYTICS_API_REQUESTS_PER_MINUTE = limit("ANALYTICS_API_REQUESTS_PER_MINUTE", 60)
check(
    ANALYTICS_API_REQUESTS_PER_MINUTE is None or ANALYTICS_API_REQUESTS_PER_MINUTE >= 1,
    "ANALYTICS_API_REQUESTS_PER_MINUTE must be at least 1 (or none), not 0",
)
# The site's public address, for links in alert notifications (e.g. https://chat.example.com).
SITE_URL = env.str("SITE_URL", default="").rstrip("/")
# Alert webhooks reach public addresses only, unless this allows internal ones (on-premises).
ALERT_WEBHOOK_ALLOW_PRIVATE = strict_bool("ALERT_WEBHOOK_ALLOW_PRIVATE", False)
# Bearer token for /metrics (Prometheus); unset = /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# `monitor` touches this file after every pass in which all its jobs succeeded (unset = none);
# `manage.py monitor --check-heartbeat [--max-age S]` checks it (a container health check).
MONITOR_HEARTBEAT_FILE = env.str("MONITOR_HEARTBEAT_FILE", default="")
# host:port of `monitor`'s /metrics, served without a token: a private network only. Unset = off.
MONITOR_METRICS_ADDRESS = host_port("MONITOR_METRICS_ADDRESS")
# Hour of the day (reporting zone) at which `monitor` emails yesterday's cost report; unset = off.
COST_REPORT_HOUR = env.int("COST_REPORT_HOUR", default=None)
check(
    COST_REPORT_HOUR is None or 0 <= COST_REPORT_HOUR <= 23,
    f"COST_REPORT_HOUR must be 0-23, not {COST_REPORT_HOUR}",
)

# --- Email ----------------------------------------------------------------------------------
# e.g. smtp+tls://user:password@smtp.example.com:587 ; unset = the console in development and
# the SMTP server on localhost:25 in production.
MAILERS = mailers("EMAIL_URL", "consolemail://" if DEBUG else "smtp://localhost:25")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="aiproject@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = choice("LOG_FORMAT", "console" if DEBUG else "json", ("json", "console"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "console": {"format": "%(asctime)s %(levelname)-7s %(name)s %(message)s"},
    },
    "handlers": {"default": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        # Request lines of the HTTP clients carry no key, but keep third-party chatter down.
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # The pool logs every failed reconnection attempt; an outage is logged once by
        # core.outages ("database unavailable since ...", then "... available again").
        "psycopg.pool": {"level": "ERROR"},
        # django-axes: login failures and lock-outs are warnings; its start-up banner and
        # per-login resets are not worth a line (and the banner would precede a command's output).
        "axes": {"level": "WARNING"},
    },
}
