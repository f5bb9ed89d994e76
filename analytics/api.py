"""The read-only JSON API of the dashboard and the daily report, v1 (docs/analytics.md).

For a staff user's own BI tool: authenticated by a bearer token (``APIToken``, created by a
superuser in the admin, expiring) or by the staff session; the user needs the dashboard
permission; each token (or session) may make ``ANALYTICS_API_REQUESTS_PER_MINUTE`` requests a
minute. The documents are the dashboard's and the report's JSON exports: the same numbers as the
pages.
"""

from datetime import UTC, timedelta

from django.conf import settings
from django.http import JsonResponse

from . import api_tokens, exports, selectors
from .forms import DateRangeForm, ReportDayForm
from .presenters import TOP_USERS
from .reports import report_document
from .timezones import today as reporting_today
from .views import PERMISSION

REALM = 'Bearer realm="analytics"'


def _error(status: int, code: str, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _unauthorized(code: str, message: str) -> JsonResponse:
    response = _error(401, code, message)
    response["WWW-Authenticate"] = (
        f'{REALM}, error="invalid_token"' if code in ("invalid_token", "token_expired") else REALM
    )
    return response


def _authorize(request) -> JsonResponse | str:
    """Return the refusal of a request that may not read the API, or the name its requests are
    counted under for the rate limit (its token, or its session)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        token = None
        if scheme.lower() == "bearer" and raw.strip():
            try:
                token = api_tokens.authenticate_api_token(raw=raw.strip())
            except api_tokens.APITokenExpired as expired:
                return _unauthorized(
                    "token_expired",
                    f"The token expired at {expired.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: a superuser "
                    "creates a new one in the admin (Analytics API tokens).",
                )
        if token is None:
            return _unauthorized("invalid_token", "The token is malformed, unknown or revoked.")
        user, subject = token.user, api_tokens.api_token_subject(token)
    else:
        user = request.user
        if not user.is_authenticated:
            return _unauthorized(
                "not_authenticated",
                "Send “Authorization: Bearer <token>” (a superuser creates tokens in the admin) "
                "or log in to the admin.",
            )
        subject = f"session:{request.session.session_key}"
    if not (user.is_active and user.is_staff and user.has_perm(PERMISSION)):
        return _error(
            403, "forbidden", "This user may not read the analytics (staff with the dashboard "
            "permission only: superusers and the Analytics viewers group)."
        )  # fmt: skip
    return subject


def _rate_limited(retry_after: int, limit: int) -> JsonResponse:
    response = _error(
        429,
        "rate_limited",
        f"More than {limit} requests this minute with this token (or session): "
        f"retry in {retry_after} s.",
        retry_after=retry_after,
    )
    response["Retry-After"] = str(retry_after)
    return response


def api_view(view):
    """GET (and HEAD) only, authorized, within the rate limit, answers not cached: the shell of
    both endpoints."""

    def wrapper(request):
        if request.method not in ("GET", "HEAD"):
            response = _error(405, "method_not_allowed", "The analytics API is read-only: GET.")
            response["Allow"] = "GET, HEAD"
            return response
        subject = _authorize(request)
        if isinstance(subject, JsonResponse):
            return subject
        limit = settings.ANALYTICS_API_REQUESTS_PER_MINUTE
        retry_after = api_tokens.take_api_request(subject=subject, limit=limit)
        if retry_after is not None:
            return _rate_limited(retry_after, limit)
        response = view(request)
        response["Cache-Control"] = "private, no-store"
        return response

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    # Nothing here changes state: a POST gets the 405 above, not a CSRF page.
    wrapper.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapper


def _bad_date(form) -> JsonResponse:
    fields = [name for name in ("start", "end", "day") if name in form.errors]
    message = form.refusal() if isinstance(form, DateRangeForm) else " ".join(form.errors["day"])
    return _error(400, "bad_date", message, **({"field": fields[0]} if fields else {}))


@api_view
def dashboard(request) -> JsonResponse:
    """``?start=&end=`` (inclusive, default the last 30 days): the dashboard as JSON."""
    today = reporting_today()
    form = DateRangeForm(request.GET, today=today)
    if not form.is_valid():
        return _bad_date(form)
    chosen = form.date_range()
    return JsonResponse(exports.dashboard_document(start=chosen.start, end=chosen.end, today=today))


@api_view
def report(request) -> JsonResponse:
    """``?day=`` (default yesterday): the daily cost report as JSON."""
    today = reporting_today()
    form = ReportDayForm(request.GET, today=today)
    if not form.is_valid():
        return _bad_date(form)
    day = form.cleaned_data["day"] or today - timedelta(days=1)
    return JsonResponse(report_document(selectors.daily_report(day, top=TOP_USERS)))
