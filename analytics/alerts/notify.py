"""Alert notifications: email, and webhooks in generic JSON, Slack, Feishu, DingTalk and WeCom.

A channel that fails is retried with backoff and logged (its URL without path or query, which
often hold a token); it never blocks the other channels or stops the monitor.
"""

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone

from analytics.rollups import ERROR_STATUSES, floor_hour
from analytics.timezones import local_day
from core.task_types import TaskType

from .models import AlertEvent, AlertRule, NotificationChannel
from .webhook_address import UnsafeWebhookAddress, open_checked

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 5.0
RETRY_DELAYS_SECONDS = (0.5, 1.0, 2.0)  # three retries after the first attempt


@dataclass(frozen=True)
class AlertMessage:
    title: str
    text: str
    data: dict


def dashboard_url(event: AlertEvent) -> str:
    query = urlencode(
        {
            "start": local_day(event.window_start).isoformat(),
            "end": local_day(event.window_end).isoformat(),
        }
    )
    return f"{settings.SITE_URL}/admin/analytics/aicall/dashboard/?{query}"


# The AI calls each metric counts, beyond the window (rollup-based metrics count every task type).
_HOURLY_METRICS = {AlertRule.Metric.SUCCESS_RATE, AlertRule.Metric.AVG_LATENCY}


def calls_query(event: AlertEvent, *, failed_only: bool = False) -> dict[str, str]:
    """Return the AICall admin's filters for the calls behind ``event``: its window (rounded
    out to the whole hours the rollups count for the rolling rules) and the metric's scope."""
    metric = event.rule.metric
    start = event.window_start
    if metric in _HOURLY_METRICS:
        start = floor_hour(start)
    query = {
        "created_at__gte": start.isoformat(),
        "created_at__lt": event.window_end.isoformat(),
    }
    if metric == AlertRule.Metric.AVG_LATENCY:
        query["status__exact"] = "ok"  # the average is over successful calls only
    if metric == AlertRule.Metric.EXPERIMENT_GUARDRAIL:
        query["task_type"] = TaskType.CHAT  # guardrails compare the variants' chat calls
    if failed_only:
        query["status__in"] = ",".join(ERROR_STATUSES)
    return query


def calls_url(event: AlertEvent, *, failed_only: bool = False, absolute: bool = True) -> str:
    """Return the AI calls admin list filtered to the calls behind ``event``."""
    path = reverse("admin:analytics_aicall_changelist")
    query = urlencode(calls_query(event, failed_only=failed_only))
    return f"{settings.SITE_URL if absolute else ''}{path}?{query}"


def build_message(event: AlertEvent, state: str) -> AlertMessage:
    rule = event.rule
    comparison = "<" if rule.comparison == rule.Comparison.LESS else ">"
    status = {"firing": "FIRING", "still firing": "STILL FIRING", "resolved": "RESOLVED"}[state]
    title = f"[{status}] {rule.name}"
    value_text = rule.format_value(event.value)
    threshold_text = rule.format_value(rule.threshold)
    lines = [
        title,
        f"{rule.get_metric_display()}: {value_text} (fires when {comparison} "
        f"{threshold_text}), {event.samples} samples",
        f"Window: {event.window_start:%Y-%m-%d %H:%M} to {event.window_end:%Y-%m-%d %H:%M} UTC",
    ]
    if state != "resolved" and rule.likely_cause:
        lines.append(f"Likely cause: {rule.likely_cause}")
    if event.resolved_at:
        lines.append(f"Resolved at {event.resolved_at:%Y-%m-%d %H:%M} UTC")
    lines.append(f"Calls: {calls_url(event)}")
    lines.append(f"Dashboard: {dashboard_url(event)}")
    data = {
        "rule": rule.name,
        "state": state.replace(" ", "_"),
        "metric": rule.metric,
        "value": float(event.value),
        "threshold": float(rule.threshold),
        "value_text": value_text,
        "threshold_text": threshold_text,
        "comparison": comparison,
        "samples": event.samples,
        "window_start": event.window_start.isoformat(),
        "window_end": event.window_end.isoformat(),
        "started_at": event.started_at.isoformat(),
        "resolved_at": event.resolved_at.isoformat() if event.resolved_at else None,
        "likely_cause": rule.likely_cause,
        "dashboard_url": dashboard_url(event),
        "calls_url": calls_url(event),
    }
    return AlertMessage(title, "\n".join(lines), data)


def webhook_payload(fmt: str, message: AlertMessage) -> dict:
    """Return the request body each service expects for a plain text message."""
    if fmt == NotificationChannel.Format.SLACK:
        return {"text": message.text}
    if fmt == NotificationChannel.Format.FEISHU:
        return {"msg_type": "text", "content": {"text": message.text}}
    if fmt in (NotificationChannel.Format.DINGTALK, NotificationChannel.Format.WECOM):
        return {"msgtype": "text", "text": {"content": message.text}}
    return {"title": message.title, "text": message.text, **message.data}


def redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def post_json(url: str, payload: dict, *, sleep=time.sleep) -> int:
    """POST ``payload``; retry failures with backoff; return the attempts made, or raise."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    last_error: Exception | None = None
    for attempt, delay in enumerate((0.0, *RETRY_DELAYS_SECONDS), start=1):
        if delay:
            sleep(delay)
        request = urllib.request.Request(  # noqa: S310 (the URL is an admin-configured https/http)
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with open_checked(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
                if 200 <= response.status < 300:
                    return attempt
                last_error = RuntimeError(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            last_error = RuntimeError(f"HTTP {exc.code}")
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                break  # a request the receiver refuses will not succeed on a retry
        except UnsafeWebhookAddress as exc:
            raise RuntimeError(str(exc)) from None  # the same on every retry
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last_error = RuntimeError(f"{type(reason).__name__}")
    raise RuntimeError(str(last_error)) from None


def channel_recipients(channel: NotificationChannel) -> list[str]:
    from analytics.services import report_recipients

    listed = [a.strip() for a in channel.recipients.replace(",", "\n").splitlines() if a.strip()]
    return listed or report_recipients()


def send_to(channel: NotificationChannel, message: AlertMessage) -> dict:
    result = {"channel": channel.name, "at": timezone.now().isoformat(), "ok": False}
    try:
        if channel.kind == NotificationChannel.Kind.EMAIL:
            recipients = channel_recipients(channel)
            if not recipients:
                raise RuntimeError("no recipients")
            EmailMessage(subject=message.title, body=message.text, to=recipients).send()
            result["recipients"] = len(recipients)
        else:
            result["attempts"] = post_json(channel.url, webhook_payload(channel.format, message))
        result["ok"] = True
    except Exception as exc:
        result["error"] = str(exc)[:200]
        target = redacted(channel.url) if channel.url else "email"
        logger.warning("alert channel %r (%s) failed: %s", channel.name, target, result["error"])
    return result


def notify(event: AlertEvent, state: str) -> list[dict]:
    message = build_message(event, state)
    results = []
    for channel in event.rule.channels.filter(enabled=True):
        result = send_to(channel, message)
        result["state"] = state
        results.append(result)
    return results
