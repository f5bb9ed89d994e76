"""Services without a server: the sweeper, titles, history trimming for the upstream."""

from datetime import timedelta

import pytest
from django.core.management import call_command

from chat import selectors, services
from chat.models import Conversation, Message

from .factories import make_conversation, make_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(django_user_model):
    user = django_user_model.objects.create_user("bob", password="x")
    return make_conversation(user, title="t")


def test_sweeper_marks_only_silent_replies_interrupted(conversation, settings):
    settings.CHAT_STALE_AFTER_SECONDS = 30
    silent = make_reply(conversation, content="partial **text**", beat_ago=31)
    alive = make_reply(make_conversation(conversation.user), content="", beat_ago=5)
    call_command("monitor", "--once")
    silent.refresh_from_db()
    # Found stale: interrupted only if its runner still has not saved after the grace.
    assert silent.status == "streaming" and silent.stale_since is not None
    Message.objects.filter(pk=silent.pk).update(
        stale_since=silent.stale_since - timedelta(seconds=settings.CHAT_SWEEP_GRACE_SECONDS)
    )
    call_command("monitor", "--once")
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert silent.status == "interrupted" and silent.error_code == "interrupted"
    assert silent.content == "partial **text**" and "<strong>text</strong>" in silent.html
    assert alive.status == "streaming"


def test_one_reply_in_progress_per_conversation_is_enforced(conversation):
    services.post_message(conversation=conversation, content="first")
    with pytest.raises(services.ReplyInProgress):
        services.post_message(conversation=conversation, content="second")
    assert conversation.messages.filter(role="user").count() == 1


def test_a_post_refused_for_a_reply_in_progress_takes_no_rate_limit_slot(conversation, settings):
    """The API finds the conversation with its reply_in_progress flag (one statement) and
    post_message refuses from it before the quota check takes a slot."""
    from analytics import quotas

    settings.QUOTA_REQUESTS_PER_MINUTE = 2
    services.post_message(conversation=conversation, content="first")  # slot 1
    busy = selectors.with_reply_in_progress(Conversation.objects).get(pk=conversation.pk)
    assert busy.reply_in_progress
    with pytest.raises(services.ReplyInProgress):
        services.post_message(conversation=busy, content="second")
    other = selectors.with_reply_in_progress(Conversation.objects).get(
        pk=make_conversation(conversation.user).pk
    )
    assert not other.reply_in_progress
    services.post_message(conversation=other, content="third")  # slot 2 was still free
    with pytest.raises(quotas.QuotaExceeded):
        quotas.take_request(conversation.user)


@pytest.fixture
def rate_limit(settings):
    """Two requests per minute, on the configured quota backend, from empty counters."""
    from analytics import quotas

    settings.QUOTA_REQUESTS_PER_MINUTE = 2
    quotas.backend().clear()
    yield 2
    quotas.backend().clear()


def rate_limited(user) -> bool:
    from analytics import quotas

    try:
        quotas.take_request(user)
    except quotas.QuotaExceeded:
        return True
    return False


def test_the_loser_of_a_race_into_one_conversation_gives_its_slot_back(conversation, rate_limit):
    """The loser looked before the winner stored its reply (its flag says no reply in
    progress), so it takes a slot; the partial unique index refuses it, and it gives the slot
    back: two requests a minute still means two stored messages."""
    stale = selectors.with_reply_in_progress(Conversation.objects).get(pk=conversation.pk)
    services.post_message(conversation=conversation, content="winner")  # slot 1
    assert stale.reply_in_progress is False
    with pytest.raises(services.ReplyInProgress):
        services.post_message(conversation=stale, content="loser")
    assert conversation.messages.filter(role="user").count() == 1
    other = make_conversation(conversation.user)
    services.post_message(conversation=other, content="third")  # slot 2
    assert rate_limited(conversation.user)


@pytest.mark.django_db(transaction=True)
def test_a_post_whose_store_fails_gives_its_slot_back(conversation, rate_limit):
    """The conversation is deleted (another tab) between the lookup and the store: the commit
    fails on the foreign key after the slot was taken."""
    Conversation.objects.filter(pk=conversation.pk).delete()
    with pytest.raises(services.ConversationGone) as refused:
        services.post_message(conversation=conversation, content="into the void")
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    assert not Message.objects.exists()
    for content in ("one", "two"):
        fresh = make_conversation(conversation.user)
        services.post_message(conversation=fresh, content=content)
    assert rate_limited(conversation.user)


@pytest.mark.django_db(transaction=True)
def test_a_started_post_whose_commit_fails_gives_slot_and_reservation_back(
    conversation, rate_limit, settings
):
    """Stored and started in one transaction (``start=True``, as the API does): the foreign key fails at the
    commit, after the slot was taken and the reply's worst case reserved; both are given back
    and nothing is stored. (The reservation matters on Redis; the database's quota counters
    roll back with the transaction.)"""
    from analytics import quotas

    settings.QUOTA_TOKENS_PER_DAY = 10**9  # a limit that reserves each reply's worst case
    Conversation.objects.filter(pk=conversation.pk).delete()
    with pytest.raises(services.ConversationGone):
        services.post_message(conversation=conversation, content="into the void", start=True)
    assert not Message.objects.exists()
    assert quotas.backend().open_reservations() == 0
    for content in ("one", "two"):
        fresh = make_conversation(conversation.user)
        posted = services.post_message(conversation=fresh, content=content, start=True)
        assert posted.prepared.plan is not None and posted.prepared.error is None
        assert Message.objects.get(pk=posted.reply.pk).status == "streaming"
    assert quotas.backend().open_reservations() == 2  # the two started replies hold theirs
    assert rate_limited(conversation.user)


def test_generated_title_never_replaces_a_persons_title(conversation):
    conversation.title = services.fallback_title("hello there")
    conversation.save()
    services.rename_conversation(conversation=conversation, title="Mine")
    assert not services.set_generated_title(
        conversation.pk, title="Model title", fallback="hello there"
    )
    conversation.refresh_from_db()
    assert conversation.title == "Mine"


def test_plan_sends_trimmed_history_with_the_system_prompt(conversation, settings):
    settings.CHAT_CONTEXT_TOKEN_BUDGET = 1500
    settings.AI_MAX_OUTPUT_TOKENS = 1000
    for i in range(5):
        make_reply(conversation, "completed", question=f"q{i} " * 100, content=f"a{i} " * 100)
    reply = services.post_message(conversation=conversation, content="latest question").reply
    plan = services.start_generation(message=reply)
    assert plan.messages[0]["role"] == "system"
    assert plan.messages[-1] == {"role": "user", "content": "latest question"}
    assert len(plan.messages) < 12  # trimmed from the oldest
    assert plan.messages[1]["content"].startswith(("q", "a"))
    reply.refresh_from_db()
    assert reply.status == "streaming"


def test_a_started_post_plans_what_starting_its_pending_reply_would(conversation, settings):
    """``start=True`` plans the reply before storing it, and inserts it ``streaming``: the same
    upstream messages as starting a stored pending reply (``start_generation``), with the
    history read once, or for a conversation's first post not at all (its context is the new
    message alone)."""
    settings.CHAT_CONTEXT_TOKEN_BUDGET = 1500
    settings.AI_MAX_OUTPUT_TOKENS = 1000
    twin = make_conversation(conversation.user, title="t")
    for target in (conversation, twin):
        for i in range(5):
            make_reply(target, "completed", question=f"q{i} " * 100, content=f"a{i} " * 100)
    pending = services.post_message(conversation=twin, content="latest question").reply
    expected = services.start_generation(message=pending)
    started = services.post_message(
        conversation=conversation, content="latest question", start=True
    )
    plan = started.prepared.plan
    assert plan.message_id == started.reply.pk != expected.message_id
    assert plan.messages == expected.messages and len(plan.messages) < 12  # trimmed alike
    assert (plan.input_tokens, plan.first_exchange) == (expected.input_tokens, False)
    stored = Message.objects.get(pk=started.reply.pk)
    assert (stored.status, stored.model) == ("streaming", plan.config.model)

    empty = make_conversation(conversation.user)
    first = selectors.with_reply_in_progress(Conversation.objects).get(pk=empty.pk)
    assert first.has_messages is False
    posted = services.post_message(conversation=first, content="hello", start=True)
    assert posted.prepared.plan.messages[-1] == {"role": "user", "content": "hello"}
    assert posted.prepared.plan.first_exchange
    assert Message.objects.get(pk=posted.reply.pk).status == "streaming"
