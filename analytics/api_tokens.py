"""Writes of the analytics API's tokens: issue, revoke, authenticate (with the token's expiry and
its last use), and the per-token rate limit counted in the cache (docs/analytics.md, "The JSON
API")."""

import hashlib
import logging
import math
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from .models import APIToken

logger = logging.getLogger(__name__)

# "AI analytics": a leaked key is recognisable (secret scanners, logs).
API_TOKEN_PREFIX = "aia_"  # noqa: S105 (a public marker, not a secret)
API_TOKEN_PREFIX_SHOWN = 12
# last_used_at is written at most this often per token (not one UPDATE per API request).
API_TOKEN_USE_PRECISION = timedelta(minutes=1)
# A token's end may be set at most this far ahead when it is made.
API_TOKEN_MAX_DAYS = 366
# The rate limit counts requests per clock minute.
RATE_WINDOW_SECONDS = 60


class APITokenExpired(Exception):
    """The key is a token's, but the token's end has passed."""

    def __init__(self, expires_at: datetime):
        super().__init__(f"expired at {expires_at.isoformat()}")
        self.expires_at = expires_at


def hash_api_token(raw: str) -> str:
    """SHA-256, hex. A key has 256 random bits, so a fast hash cannot be brute-forced."""
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_api_token(*, token: APIToken, created_by) -> str:
    """Give the unsaved ``token`` (user, name and expiry set) a new key, save it, return the key.

    The key is not stored anywhere: the caller shows it once.
    """
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token.prefix = raw[:API_TOKEN_PREFIX_SHOWN]
    token.key_hash = hash_api_token(raw)
    token.created_by = created_by
    token.save()
    return raw


def revoke_api_tokens(*, token_ids: Iterable[int]) -> int:
    """Revoke the tokens (from now on they answer 401); return how many were still active."""
    return APIToken.objects.filter(pk__in=list(token_ids), revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def authenticate_api_token(*, raw: str) -> APIToken | None:
    """Return the unrevoked token of an active user with this key, or None; raise
    ``APITokenExpired`` for an expired one. Notes its use, at most once a minute."""
    if not raw.startswith(API_TOKEN_PREFIX) or len(raw) > 100:
        return None
    token = (
        APIToken.objects.select_related("user")
        .filter(key_hash=hash_api_token(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.expires_at <= now:
        raise APITokenExpired(token.expires_at)
    if token.last_used_at is None or token.last_used_at < now - API_TOKEN_USE_PRECISION:
        # Conditional, so that two processes in the same minute write it once.
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - API_TOKEN_USE_PRECISION)
        APIToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    return token


def take_api_request(*, subject: str, limit: int | None, now: float | None = None) -> int | None:
    """Count one request of ``subject`` (a token or a session) in this clock minute.

    Return None when it is within ``limit`` requests of the minute (None: no limit), else the
    seconds until the next minute (the answer's Retry-After). The count lives in the cache
    (shared by every process through Redis; per process without it). If the cache cannot be
    reached the request is let through, and a warning logged: the API must not fail with Redis.
    """
    if limit is None:
        return None
    now = time.time() if now is None else now
    window = int(now // RATE_WINDOW_SECONDS)
    key = f"analytics-api-rate:{subject}:{window}"
    try:
        cache.add(key, 0, timeout=RATE_WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between the two calls
            cache.set(key, 1, timeout=RATE_WINDOW_SECONDS + 5)
            count = 1
    except Exception:  # Redis down or refusing: serve the request unlimited, but say so
        logger.warning("analytics API rate limit not counted: the cache failed", exc_info=True)
        return None
    if count <= limit:
        return None
    return max(1, math.ceil((window + 1) * RATE_WINDOW_SECONDS - now))


def api_token_subject(token: APIToken) -> str:
    """The rate limit's name for a token: part of its hash (ids are reused by test databases)."""
    return f"token:{token.key_hash[:24]}"
