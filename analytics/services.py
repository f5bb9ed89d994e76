"""Writes of the analytics app. The chat runner calls ``record_call`` once per upstream attempt."""

import functools
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from .metrics import observe_call
from .models import AICall, JobState
from .pricing import cost_of, price_for
from .signals import call_recorded
from .timezones import reporting_zone

logger = logging.getLogger("analytics.ai_call")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    task_type: str
    model: str
    base_url: str
    status: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    cached_input_tokens: int = 0
    variant: str = ""
    prompt_version_id: int | None = None
    ttft_ms: int | None = None
    tokens_estimated: bool = False
    error_code: str = ""
    attempt: int = 1
    streamed: bool = True
    request_id: str = ""
    user_id: int | None = None
    conversation_id: int | None = None
    message_id: int | None = None
    created_at: datetime = field(default_factory=timezone.now)
    # When the call started (not stored; announced with the record): quotas charge it to the
    # day that admitted it.
    started_at: datetime | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def record_call(call: CallRecord) -> AICall:
    """Store one upstream attempt and log it as one JSON line (event ``ai_call``)."""
    fields = asdict(call)
    fields["base_url_host"] = urlsplit(fields.pop("base_url")).hostname or ""
    started_at = fields.pop("started_at") or call.created_at
    day = timezone.localtime(call.created_at, reporting_zone()).date()
    fields["cost_usd"] = cost_of(
        price_for(call.model, day),
        input_tokens=call.input_tokens,
        cached_input_tokens=call.cached_input_tokens,
        output_tokens=call.output_tokens,
    )
    if transaction.get_connection().in_atomic_block:
        # Inside the caller's transaction (the end of a reply): the foreign keys are checked at
        # its commit (Django's are deferred), where a savepoint here could catch nothing; the
        # caller leaves out a conversation deleted meanwhile (chat.lifecycle).
        row = AICall.objects.create(**fields, total_tokens=call.total_tokens)
    else:
        try:
            with transaction.atomic():
                row = AICall.objects.create(**fields, total_tokens=call.total_tokens)
        except IntegrityError:
            # The conversation or user was deleted while the call ran: keep the call without
            # them.
            fields.update(conversation_id=None, message_id=None)
            user_id = fields["user_id"]
            if user_id and not get_user_model().objects.filter(pk=user_id).exists():
                fields["user_id"] = None
            row = AICall.objects.create(**fields, total_tokens=call.total_tokens)
    observe_call(call, row.cost_usd)
    # Announced after commit: a rolled-back record must not count against anyone's quota.
    transaction.on_commit(
        functools.partial(call_recorded.send, sender=AICall, call=row, started_at=started_at)
    )
    logger.info(
        "ai_call",
        extra={
            "event": "ai_call",
            "model": call.model,
            "input_tokens": call.input_tokens,
            "cached_input_tokens": call.cached_input_tokens,
            "output_tokens": call.output_tokens,
            "total_tokens": call.total_tokens,
            "tokens_estimated": call.tokens_estimated,
            "latency_ms": call.latency_ms,
            "ttft_ms": call.ttft_ms,
            "status": call.status,
            "error_code": call.error_code,
            "task_type": call.task_type,
            "variant": call.variant,
            "cost_usd": str(row.cost_usd) if row.cost_usd is not None else None,
            "attempt": call.attempt,
            "request_id": call.request_id,
            "timestamp": call.created_at.isoformat(),
        },
    )
    return row


def record_call_once(call: CallRecord, *, retry: bool = True) -> AICall:
    """``record_call``, unless this very record is stored already.

    ``retry`` False: the first try of the write, so nothing of it can have landed yet, and the
    record is stored without looking for it first (one statement and a savepoint fewer).

    For writes that are retried (the end of a reply, during a database outage): when a commit
    landed but its answer was lost, or the record was stored alone while the rest of its
    transaction kept failing, the retry must not add the attempt again. A ``CallRecord`` is made
    once per attempt and keeps its ``created_at`` (microseconds) through every retry; with the
    task type, attempt, model and latency it names the attempt. The one writer of a record is the
    runner that made it, so checking and inserting in one transaction is enough.
    """
    if not retry:
        return record_call(call)
    with transaction.atomic():
        existing = AICall.objects.filter(
            created_at=call.created_at,
            task_type=call.task_type,
            attempt=call.attempt,
            model=call.model,
            latency_ms=call.latency_ms,
        ).first()
        return existing if existing is not None else record_call(call)


def report_recipients() -> list[str]:
    """Emails of active staff who may read the dashboard (superusers included)."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted({u.email for u in users if u.has_perm("analytics.view_ai_dashboard")})


def email_cost_report(report) -> list[str]:
    """Email the daily cost report (text, with the CSV attached); return the recipients."""
    from .reports import report_csv, report_text

    recipients = report_recipients()
    if not recipients:
        return []
    message = EmailMessage(
        subject=f"AI cost report {report.day.isoformat()}: ${report.total.cost_usd:,.2f}",
        body=report_text(report),
        to=recipients,
    )
    message.attach(f"ai-cost-report-{report.day.isoformat()}.csv", report_csv(report), "text/csv")
    message.send()
    return recipients


def claim_once(name: str) -> bool:
    """Return True for the first caller of ``name`` in any process, False for every later one."""
    try:
        with transaction.atomic():
            JobState.objects.create(name=name, value={"claimed_at": timezone.now().isoformat()})
    except IntegrityError:
        return False
    return True
