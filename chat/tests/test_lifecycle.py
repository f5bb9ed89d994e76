"""Status guards of the writes that end a reply (chat.lifecycle), without a server."""

from datetime import timedelta

import pytest

from analytics.models import AICall
from analytics.services import CallRecord
from chat import lifecycle
from chat.models import Message

from .factories import make_conversation
from .factories import make_reply as reply

pytestmark = pytest.mark.django_db

TERMINAL = ["completed", "cancelled", "failed", "interrupted"]


@pytest.fixture
def conversation(django_user_model):
    user = django_user_model.objects.create_user("bob", password="x")
    return make_conversation(user, title="t")


def end(status="completed", text="the whole text"):
    return {
        "status": status,
        "text": text,
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 5,
        "tokens_estimated": False,
        "latency_ms": 100,
        "ttft_ms": 20,
    }


def call_of(message, **kwargs):
    return CallRecord(
        task_type="chat",
        model="gpt-4o-mini",
        base_url="https://user:secret@api.example/v1",
        status="ok",
        input_tokens=10,
        output_tokens=5,
        latency_ms=100,
        user_id=message.conversation.user_id,
        conversation_id=message.conversation_id,
        message_id=message.pk,
        **kwargs,
    )


@pytest.mark.parametrize("terminal", TERMINAL)
def test_final_write_never_overwrites_a_terminal_status(conversation, terminal):
    done = reply(conversation, terminal, content="stored text", error_code="interrupted")
    call = call_of(done)
    event, data = lifecycle.finish_reply(done.pk, call=call, **end())
    stored = Message.objects.get(pk=done.pk)
    assert stored.status == terminal and stored.content == "stored text"
    # The closing event is what is stored, not what this runner wanted to store.
    assert data["status"] == terminal
    assert event == ("done" if terminal in ("completed", "cancelled") else "error")
    # The attempt happened: its call is recorded all the same, once.
    assert AICall.objects.filter(message=done).count() == 1


def test_final_write_retried_records_the_call_once(conversation):
    streaming = reply(conversation)
    call = call_of(streaming)
    fields = lifecycle.final_fields(**end())
    first = lifecycle.store_final_reply(streaming.pk, fields=fields, call=call)
    # A retry of the same write (its first commit landed unseen) changes nothing.
    again = lifecycle.store_final_reply(streaming.pk, fields=fields, call=call)
    assert first == again and first[1]["status"] == "completed"
    assert AICall.objects.filter(message=streaming).count() == 1
    # Another attempt (a new record) is recorded.
    lifecycle.store_final_reply(streaming.pk, fields=fields, call=call_of(streaming, attempt=2))
    assert AICall.objects.filter(message=streaming).count() == 2


@pytest.mark.parametrize("known", [True, False])
def test_final_write_touches_its_conversation_only(conversation, known):
    """Its conversation moves up the sidebar (updated_at), by key when the runner knows it and
    through the reply otherwise; no other conversation is touched."""
    streaming = reply(conversation)
    other = make_conversation(conversation.user, title="other")
    reply(other, "completed")
    past = conversation.updated_at - timedelta(days=1)
    type(conversation).objects.update(updated_at=past)
    lifecycle.store_final_reply(
        streaming.pk,
        fields=lifecycle.final_fields(**end()),
        conversation_id=conversation.pk if known else None,
    )
    conversation.refresh_from_db()
    other.refresh_from_db()
    assert conversation.updated_at > past
    assert other.updated_at == past


@pytest.mark.parametrize("terminal", TERMINAL)
def test_progress_save_never_touches_a_finished_reply_and_stops_its_runner(conversation, terminal):
    done = reply(conversation, terminal, content="final")
    assert lifecycle.save_progress(done.pk, "partial text of a runner thought dead") is True
    assert not lifecycle.save_pending_end(done.pk, "whole text")
    assert Message.objects.get(pk=done.pk).content == "final"


def test_unstarted_reply_is_failed_only_while_pending(conversation):
    pending = reply(conversation, "pending", content="")
    event, data = lifecycle.fail_unstarted_reply(pending.pk)
    assert event == "error" and data["status"] == "failed"
    assert Message.objects.get(pk=pending.pk).status == "failed"
    other = make_conversation(conversation.user)
    live = reply(other, "streaming")
    assert lifecycle.fail_unstarted_reply(live.pk) is None  # not this runner's to end
    assert Message.objects.get(pk=live.pk).status == "streaming"
    finished = reply(make_conversation(conversation.user), "completed")
    assert lifecycle.fail_unstarted_reply(finished.pk)[1]["status"] == "completed"


def test_sweep_interrupts_only_after_the_grace_with_no_save_since(conversation, settings):
    settings.CHAT_STALE_AFTER_SECONDS = 30
    settings.CHAT_SWEEP_GRACE_SECONDS = 10
    gone = reply(conversation, beat_ago=60)
    assert lifecycle.sweep_stale_replies() == 0  # found stale: the grace starts
    gone.refresh_from_db()
    assert gone.status == "streaming" and gone.stale_since is not None
    found_at = gone.stale_since
    # A runner that lived through a database outage: it saves after the finding ...
    alive = reply(make_conversation(conversation.user), beat_ago=60)
    lifecycle.sweep_stale_replies()
    alive.refresh_from_db()
    assert lifecycle.save_progress(alive.pk, "more text") is False
    # ... and the grace passes (for both).
    Message.objects.filter(pk__in=[gone.pk, alive.pk]).update(
        stale_since=found_at - timedelta(seconds=11)
    )
    assert lifecycle.sweep_stale_replies() == 1
    gone.refresh_from_db()
    alive.refresh_from_db()
    assert gone.status == "interrupted" and gone.content == "partial"
    assert alive.status == "streaming" and alive.content == "more text"


@pytest.mark.parametrize("terminal", TERMINAL)
def test_sweep_never_touches_a_finished_reply(conversation, settings, terminal):
    settings.CHAT_SWEEP_GRACE_SECONDS = 0
    done = reply(conversation, terminal, beat_ago=3600, error_code="x")
    assert lifecycle.sweep_stale_replies() == 0
    done.refresh_from_db()
    assert done.status == terminal and done.error_code == "x"


def test_zero_grace_sweeps_in_one_pass(conversation, settings):
    settings.CHAT_SWEEP_GRACE_SECONDS = 0
    settings.CHAT_STALE_AFTER_SECONDS = 30
    gone = reply(conversation, beat_ago=60)
    assert lifecycle.sweep_stale_replies(message_id=gone.pk) == 1
    assert Message.objects.get(pk=gone.pk).status == "interrupted"
