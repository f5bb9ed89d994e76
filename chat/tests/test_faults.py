"""Every upstream fault: the right status, message state, AICall rows and user-facing error."""

import uuid

import pytest

from analytics.models import AICall
from chat.models import Message
from devtools.live import api_client
from devtools.sse import read_stream

from .test_streaming import start_reply

pytestmark = pytest.mark.django_db(transaction=True)

# The served app retries twice (AI_MAX_RETRIES default 2): three attempts at most.
CASES = [
    # marker, final status, error code, AICall statuses in order, text shown before the fault
    ("status=401", "failed", "upstream_auth", ["error"], False),
    ("status=403", "failed", "upstream_auth", ["error"], False),
    ("status=400", "failed", "upstream_rejected", ["error"], False),
    ("status=429,retry_after=0", "failed", "upstream_rate_limited", ["rate_limited"] * 3, False),
    ("status=500", "failed", "upstream_unavailable", ["error"] * 3, False),
    ("status=503,fail_first=1", "completed", "", ["error", "ok"], False),
    (
        "status=429,retry_after=0,fail_first=2",
        "completed",
        "",
        ["rate_limited"] * 2 + ["ok"],
        False,
    ),
    ("stall,after=3", "failed", "upstream_stalled", ["timeout"], True),
    ("stall,after=0", "failed", "upstream_timeout", ["timeout"] * 3, False),
    ("disconnect,after=3", "failed", "upstream_connection", ["error"], True),
    ("no_finish", "failed", "upstream_incomplete", ["error"], True),
    ("malformed,after=2", "failed", "upstream_malformed", ["error"], True),
]


@pytest.mark.parametrize(("marker", "status", "code", "call_statuses", "partial"), CASES)
def test_upstream_fault(app_server, user, marker, status, code, call_statuses, partial):
    content = f"Fault {uuid.uuid4().hex[:8]} [sim:{marker}]"
    with api_client(app_server, user) as client:
        started = start_reply(client, content)
        result = read_stream(client, started["stream_url"])
        page = client.get(f"/c/{started['conversation_id']}/").text

    reply = Message.objects.get(pk=started["assistant_message"]["id"])
    assert reply.status == status
    calls = list(AICall.objects.filter(message=reply).order_by("attempt"))
    assert [c.status for c in calls] == call_statuses
    assert [c.attempt for c in calls] == list(range(1, len(calls) + 1))
    if status == "completed":
        assert result.final.event == "done"
        assert reply.content == result.text
        return
    assert result.final.event == "error"
    assert result.final.data["code"] == code
    assert reply.error_code == code
    assert calls[-1].error_code == code
    message = result.final.data["message"]
    assert message and "Traceback" not in message
    # Neither the key nor the upstream's error body reaches the user.
    for text in (message, page, result.text):
        assert "sk-test-simulator-key" not in text
        assert "invalid_api_key" not in text
    if partial:
        assert reply.content and reply.content == result.text
        assert calls[-1].tokens_estimated and calls[-1].output_tokens > 0
    else:
        assert reply.content == ""
        assert result.text == ""


def test_no_usage_from_upstream_is_estimated_not_zero(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, "No usage here [sim:no_usage,tokens=30]")
        result = read_stream(client, started["stream_url"])
    assert result.final.data["status"] == "completed"
    call = AICall.objects.get(message_id=started["assistant_message"]["id"])
    assert call.status == "ok"
    assert call.tokens_estimated
    assert call.output_tokens > 0 and call.input_tokens > 0
    assert result.final.data["usage"]["estimated"] is True


def test_failed_reply_can_be_retried(app_server, user):
    with api_client(app_server, user) as client:
        started = start_reply(client, f"Retry me {uuid.uuid4().hex[:6]} [sim:status=401]")
        failed = read_stream(client, started["stream_url"])
        assert failed.final.data["retryable"] is False
        retry = client.post(f"/api/messages/{started['assistant_message']['id']}/regenerate")
        assert retry.status_code == 202
        again = read_stream(client, retry.json()["stream_url"])
    # The marker is still in the message, so the retry fails the same way, as a new reply.
    assert again.final.event == "error"
    assert Message.objects.filter(reply_to_id=started["user_message"]["id"]).count() == 2
