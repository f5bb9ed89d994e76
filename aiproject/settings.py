"""The one settings module. Every deployment difference is an environment variable.

Variables come from the process environment or from the file named by ``ENV_FILE``
(default ``.env`` beside ``manage.py``); the process environment wins. ``.env.example``
documents every variable.
"""

import importlib.util
import ipaddress
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.conf import global_settings
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if os.path.isfile(ENV_FILE):
    env.read_env(ENV_FILE)  # never overrides variables already set in the environment
elif "ENV_FILE" in os.environ:
    raise ImproperlyConfigured(f"ENV_FILE names a file that does not exist: {ENV_FILE}")

# An empty value (`DATABASE_URL=` copied from .env.example) means "unset, use the default".
for _name, _value in list(os.environ.items()):
    if _value == "" and _name.isupper():
        del os.environ[_name]

DEBUG = env.bool("DEBUG", default=False)


def _required(name: str, *, dev_default: str) -> str:
    """Return a variable production cannot run without; development gets a harmless default."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Production (DEBUG off) refuses to start without it; "
        f"set it in the environment or in the file named by ENV_FILE."
    )


SECRET_KEY = _required("SECRET_KEY", dev_default="django-insecure-development-only-key")
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
    "experiments",
    "chat",
]
# Development tools (the LLM simulator's `llm_simulator` command): installed wherever the package
# is, i.e. a checkout and the simulator's image; the production image leaves devtools/ out.
if importlib.util.find_spec("devtools") is not None:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "core.health.HealthCheckMiddleware",
    "analytics.middleware.RequestLogMiddleware",
    # Django's own middleware, its hooks run on the event loop where they do no I/O (see the
    # module): the stock classes would hand each hook to a thread, 15 hand-offs a request.
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
# During an outage a checkout waits at most DB_CONNECT_TIMEOUT_SECONDS, then every call fails at
# once (503 database_unavailable) and one probe every DB_OUTAGE_PROBE_SECONDS finds the database
# back (core/postgresql, docs/deploy.md "Outages").
DB_CONNECT_TIMEOUT_SECONDS = env.float("DB_CONNECT_TIMEOUT_SECONDS", default=2.0)
DB_OUTAGE_PROBE_SECONDS = env.float("DB_OUTAGE_PROBE_SECONDS", default=1.0)
for _name in ("DB_CONNECT_TIMEOUT_SECONDS", "DB_OUTAGE_PROBE_SECONDS"):
    if not globals()[_name] > 0:
        raise ImproperlyConfigured(
            f"{_name} must be a positive number of seconds, not {globals()[_name]}."
        )
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["ENGINE"] = "core.postgresql"  # Django's backend, failing fast during an outage
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=30),
        "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
    }
    # libpq's connect timeout (whole seconds, at least 2): a server that does not answer at all
    # (a dead host, a partition) fails a connection attempt in this long, not the OS's minutes.
    _db["OPTIONS"].setdefault("connect_timeout", max(round(DB_CONNECT_TIMEOUT_SECONDS), 2))
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests start real server processes that must see the test database: keep it in a file,
    # one per test run so that two runs never share it.
    _db["TEST"] = {"NAME": str(BASE_DIR / f"test_db_{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and cache ---------------------------------------------------------
# Unset REDIS_URL means the in-memory channel layer and local-memory cache: one process only.
REDIS_URL = env.str("REDIS_URL", default="")
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="aiproject")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default 5 s socket timeout races channels-redis's 5 s blocking pop.
                # redis-py's default pool raises past 100 connections; every open cross-process
                # stream and every reply's publisher may hold one.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "max_connections": 1000}],
                "prefix": CHANNEL_LAYER_PREFIX,
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's default (PBKDF2) unless set; the test suite sets a fast hasher for itself and the
# processes it serves (conftest.py). Never set it in a deployment.
PASSWORD_HASHERS = env.list("PASSWORD_HASHERS", default=global_settings.PASSWORD_HASHERS)
# Login throttling (django-axes; docs/deploy.md): after LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one client address, that pair is refused (429) for LOGIN_LOCKOUT_SECONDS,
# on the site's login and /admin/login/ alike. Attempts are rows in the database, so every
# process sees them. The address believes X-Forwarded-For only from TRUSTED_PROXIES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]


def _positive_int(name: str, default: int) -> int:
    raw = env.str(name, default=str(default))
    if not raw.isdigit() or int(raw) < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number of at least 1, not {raw!r}.")
    return int(raw)


LOGIN_FAILURE_LIMIT = _positive_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = _positive_int("LOGIN_LOCKOUT_SECONDS", 900)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts refused during a lock-out are not recorded: hammering a locked login writes nothing
# (axes would otherwise update the row, appending the request, on every refused attempt).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # failures only: no row per successful login
AXES_LOCKOUT_CALLABLE = "chat.views.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"
try:  # addresses or CIDR ranges of the proxies in front (e.g. nginx's docker network)
    TRUSTED_PROXIES = tuple(
        ipaddress.ip_network(value.strip(), strict=False)
        for value in env.list("TRUSTED_PROXIES", default=[])
    )
except ValueError as exc:
    raise ImproperlyConfigured(
        f"TRUSTED_PROXIES must list IP addresses or CIDR ranges: {exc}"
    ) from exc
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
# Days in reports, rollups and quotas are counted in this zone.
REPORTING_TIME_ZONE = env.str("REPORTING_TIME_ZONE", default="UTC")
try:
    ZoneInfo(REPORTING_TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(
        f"REPORTING_TIME_ZONE is not a time zone name: {REPORTING_TIME_ZONE!r}"
    ) from exc

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# The app serves /static/ itself only in development and tests; production puts nginx in front.
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)

# --- Security -------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
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
# With no AI_API_KEY in development, the built-in simulator (``manage.py llm_simulator``) stands
# in for the upstream; production refuses to start without a key.
AI_SIMULATOR_PORT = env.int("AI_SIMULATOR_PORT", default=8001)
AI_USING_SIMULATOR = not env.str("AI_API_KEY", default="")
AI_API_KEY = _required("AI_API_KEY", dev_default="simulator-key")
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
# The SDK's HTTP transport: aiohttp (the SDK's `DefaultAioHttpClient`; its C parser reads a
# stream's chunks for about a fifth less CPU per reply, docs/performance.md) or httpx.
AI_HTTP_CLIENT = env.str("AI_HTTP_CLIENT", default="aiohttp")
if AI_HTTP_CLIENT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured(f"AI_HTTP_CLIENT must be aiohttp or httpx, not {AI_HTTP_CLIENT!r}.")
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
# Deltas to subscribers in other processes (the channel layer) go out at most this often, each
# carrying what the reply wrote since the last: one Redis round trip per token cost more CPU.
CHAT_PUBLISH_INTERVAL_SECONDS = env.float("CHAT_PUBLISH_INTERVAL_SECONDS", default=0.05)
# Prices, users' limits and what serves each prompt (the running experiment, the live version)
# are kept per process this long (core/localcache.py): a change made in another process
# applies here within it. 0 reads them from the database every time.
CONFIG_CACHE_SECONDS = env.float("CONFIG_CACHE_SECONDS", default=5.0)
# Threads for the chat's database calls (posting, saves, finishing; keep below DB_POOL_MAX_SIZE).
# Each thread running ORM code competes with the event loop for the GIL, and takes it whenever
# the loop makes a system call: at 50 replies posted at once, the first tokens came up to 8 ms
# late (p99 over 12 rounds) with 1 thread, 11-48 ms with 2, 66-305 ms with 3 to 16
# (docs/performance.md). Raise it only for a distant database, whose round trips keep one
# thread waiting, or if one slow statement must not delay the process's other chat calls.
CHAT_DB_THREADS = env.int("CHAT_DB_THREADS", default=1)
if CHAT_DB_THREADS < 1:
    raise ImproperlyConfigured(f"CHAT_DB_THREADS must be at least 1, not {CHAT_DB_THREADS}.")
# Worker threads of finished requests kept for the next requests (core/handlers.py): a
# request's synchronous code runs on a thread of its own, which Django starts and joins anew
# for every request, each time making the event loop wait. One thread per request in flight.
ASGI_IDLE_REQUEST_THREADS = env.int("ASGI_IDLE_REQUEST_THREADS", default=64)
if ASGI_IDLE_REQUEST_THREADS < 0:
    raise ImproperlyConfigured(
        f"ASGI_IDLE_REQUEST_THREADS must be 0 or more, not {ASGI_IDLE_REQUEST_THREADS}."
    )
# A pending/streaming reply whose runner has not saved for this long is marked interrupted.
CHAT_STALE_AFTER_SECONDS = env.float("CHAT_STALE_AFTER_SECONDS", default=30.0)
# A sweeper marks a stale reply interrupted only after it found it stale and saw no save from
# its runner for this long more (the database up meanwhile: the sweeper wrote its finding). A
# runner alive through a database outage gets the first word once the database is back.
CHAT_SWEEP_GRACE_SECONDS = env.float("CHAT_SWEEP_GRACE_SECONDS", default=10.0)
if not 0 <= CHAT_SWEEP_GRACE_SECONDS < 86400:
    raise ImproperlyConfigured(
        f"CHAT_SWEEP_GRACE_SECONDS must be between 0 and 86400, not {CHAT_SWEEP_GRACE_SECONDS}."
    )
# The end of a reply (message + AICall, one transaction) is retried this long if its write
# fails (a database outage), kept in memory meanwhile; then it is logged at ERROR and counted.
CHAT_FINISH_RETRY_SECONDS = env.float("CHAT_FINISH_RETRY_SECONDS", default=300.0)
if not 0 <= CHAT_FINISH_RETRY_SECONDS <= 86400:
    raise ImproperlyConfigured(
        f"CHAT_FINISH_RETRY_SECONDS must be between 0 and 86400, not {CHAT_FINISH_RETRY_SECONDS}."
    )


def _seconds(name: str, default: float) -> float:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from exc
    if not value >= 0:  # also refuses nan
        raise ImproperlyConfigured(f"{name} must be 0 or more seconds, not {raw!r}")
    return value


# On SIGTERM (or SIGINT) daphne drains (core/draining.py): it refuses new posts and new
# streams with 503 `draining` and lets the replies in progress run to their end for up to
# CHAT_DRAIN_SECONDS; then it interrupts what is left, and each of those stores its reply as
# interrupted, its call with the usage so far and releases its quota within
# CHAT_SHUTDOWN_GRACE_SECONDS. A stopper must wait longer than the sum (compose's
# stop_grace_period) before it kills. A second signal ends the drain at once.
CHAT_DRAIN_SECONDS = _seconds("CHAT_DRAIN_SECONDS", 60.0)
CHAT_SHUTDOWN_GRACE_SECONDS = _seconds("CHAT_SHUTDOWN_GRACE_SECONDS", 8.0)
SSE_PING_SECONDS = env.float("SSE_PING_SECONDS", default=15.0)
# Open streams per user in one process; one more gets 429 too_many_streams. Per process on
# purpose: it guards the process's memory and connections (docs/architecture.md).
CHAT_MAX_STREAMS_PER_USER = env.int("CHAT_MAX_STREAMS_PER_USER", default=8)
if CHAT_MAX_STREAMS_PER_USER < 1:
    raise ImproperlyConfigured(
        f"CHAT_MAX_STREAMS_PER_USER must be at least 1, not {CHAT_MAX_STREAMS_PER_USER}."
    )
# A stream following a reply generated by another process waits on Redis for its deltas; while
# the reply is silent it reads the reply's state from the database at most this often (to see a
# lost end or a dead runner). While Redis is away it reads every second instead.
CHAT_FOLLOWER_CHECK_SECONDS = env.float("CHAT_FOLLOWER_CHECK_SECONDS", default=5.0)
if CHAT_FOLLOWER_CHECK_SECONDS <= 0:
    raise ImproperlyConfigured(
        f"CHAT_FOLLOWER_CHECK_SECONDS must be above 0, not {CHAT_FOLLOWER_CHECK_SECONDS}."
    )
# A stream whose reader stops reading (the socket's buffers full) for this long is closed, so
# that it cannot hold its unsent text in memory (daphne only).
SSE_WRITE_TIMEOUT_SECONDS = env.float("SSE_WRITE_TIMEOUT_SECONDS", default=30.0)
if SSE_WRITE_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured(
        f"SSE_WRITE_TIMEOUT_SECONDS must be above 0, not {SSE_WRITE_TIMEOUT_SECONDS}."
    )


# --- Analytics ------------------------------------------------------------------------------
# Raw AI call rows older than this are deleted by `monitor` (rollups are kept).
def _limit(name: str, default, cast=int):
    """A limit: a number, or ``none`` for no limit (an unset variable takes ``default``)."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.lower() in {"none", "off", "unlimited"}:
        return None
    try:
        value = cast(raw)
    except (ValueError, ArithmeticError) as exc:
        raise ImproperlyConfigured(f"{name} must be a number or 'none', not {raw!r}") from exc
    if value < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, not {raw!r}")
    return value


# Per-user defaults (overridable per user and per group in the admin) and the global daily cap;
# see docs/quotas.md. Days and months are those of REPORTING_TIME_ZONE.
QUOTA_REQUESTS_PER_MINUTE = _limit("QUOTA_REQUESTS_PER_MINUTE", 20)
QUOTA_TOKENS_PER_DAY = _limit("QUOTA_TOKENS_PER_DAY", 200_000)
QUOTA_COST_PER_DAY_USD = _limit("QUOTA_COST_PER_DAY_USD", Decimal("1.00"), Decimal)
QUOTA_COST_PER_MONTH_USD = _limit("QUOTA_COST_PER_MONTH_USD", Decimal("20.00"), Decimal)
AI_DAILY_COST_CAP_USD = _limit("AI_DAILY_COST_CAP_USD", None, Decimal)
QUOTA_BACKEND = env.str("QUOTA_BACKEND", default="redis" if REDIS_URL else "database")
if QUOTA_BACKEND not in {"redis", "database"}:
    raise ImproperlyConfigured(
        f"QUOTA_BACKEND must be 'redis' or 'database', not {QUOTA_BACKEND!r}"
    )
if QUOTA_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("QUOTA_BACKEND is 'redis' but REDIS_URL is not set")
QUOTA_RESERVATION_TTL_SECONDS = env.float("QUOTA_RESERVATION_TTL_SECONDS", default=120.0)

ANALYTICS_RAW_RETENTION_DAYS = env.int("ANALYTICS_RAW_RETENTION_DAYS", default=90)
# The site's public address, for links in alert notifications (e.g. https://chat.example.com).
SITE_URL = env.str("SITE_URL", default="").rstrip("/")
# Alert webhooks may reach public addresses only (analytics/webhook_address.py); true also
# allows loopback, private, link-local and other internal addresses, for on-premises receivers.
_allow_private = env.str("ALERT_WEBHOOK_ALLOW_PRIVATE", default="false").lower()
if _allow_private not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
    raise ImproperlyConfigured(
        f"ALERT_WEBHOOK_ALLOW_PRIVATE must be true or false, not {_allow_private!r}"
    )
ALERT_WEBHOOK_ALLOW_PRIVATE = _allow_private in {"true", "1", "yes", "on"}
# Bearer token for /metrics (Prometheus); unset = /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# `monitor` touches this file after every pass in which all its jobs succeeded (unset = none);
# `manage.py monitor --check-heartbeat [--max-age S]` checks it (a container health check).
MONITOR_HEARTBEAT_FILE = env.str("MONITOR_HEARTBEAT_FILE", default="")
# host:port on which `monitor` serves its Prometheus metrics (aiproject_dependency_up ...) at
# /metrics, without a token: bind it to a private network only. Unset = not served.
MONITOR_METRICS_ADDRESS = env.str("MONITOR_METRICS_ADDRESS", default="")
if MONITOR_METRICS_ADDRESS:
    _host, _, _port = MONITOR_METRICS_ADDRESS.rpartition(":")
    if not _host or not _port.isdigit() or not 0 < int(_port) < 65536:
        raise ImproperlyConfigured(
            f"MONITOR_METRICS_ADDRESS must be host:port, e.g. 0.0.0.0:9101, "
            f"not {MONITOR_METRICS_ADDRESS!r}."
        )
# Hour of the day (reporting zone) at which `monitor` emails yesterday's cost report; unset = off.
COST_REPORT_HOUR = env.int("COST_REPORT_HOUR", default=None)
if COST_REPORT_HOUR is not None and not 0 <= COST_REPORT_HOUR <= 23:
    raise ImproperlyConfigured(f"COST_REPORT_HOUR must be 0-23, not {COST_REPORT_HOUR}")

# --- Email ----------------------------------------------------------------------------------
# e.g. smtp+tls://user:password@smtp.example.com:587 ; unset = the console in development and
# the SMTP server on localhost:25 in production.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
_email_options = {
    "host": _email.get("EMAIL_HOST"),
    "port": _email.get("EMAIL_PORT"),
    "username": _email.get("EMAIL_HOST_USER"),
    "password": _email.get("EMAIL_HOST_PASSWORD"),
    "use_tls": _email.get("EMAIL_USE_TLS"),
    "use_ssl": _email.get("EMAIL_USE_SSL"),
}
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": (
            {k: v for k, v in _email_options.items() if v not in (None, "")}
            if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
            else {}
        ),
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="aiproject@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'console', not {LOG_FORMAT!r}")

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
