"""Reply versions and branches in the services (chat.branches, chat.services, chat.selectors),
on the suite's database (SQLite, or PostgreSQL with DATABASE_URL), and the data migration that
turns the stored conversations into trees."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from chat import selectors, services
from chat.models import Conversation, Message


@pytest.fixture
def conversation(django_user_model):
    user = django_user_model.objects.create_user("bob", password="x")
    return Conversation.objects.create(user=user, title="t")


def finish(reply: Message, text: str) -> None:
    """Store a reply as completed (what the runner does at the end)."""
    Message.objects.filter(pk=reply.pk).update(status="completed", content=text)


def ask(conversation: Conversation, text: str) -> Message:
    posted = services.post_message(
        conversation=Conversation.objects.get(pk=conversation.pk), content=text
    )
    finish(posted.reply, f"answer to {text}")
    return posted.reply


def read(conversation: Conversation) -> list[tuple[str, str]]:
    conversation = Conversation.objects.get(pk=conversation.pk)
    return [
        (m.content, f"{m.versions.index}/{m.versions.count}")
        for m in selectors.visible_messages(conversation)
    ]


def upstream_context(reply: Message) -> list[str]:
    """The messages the runner would send upstream for ``reply`` (start_generation's plan)."""
    reply = Message.objects.select_related("conversation__user").get(pk=reply.pk)
    plan = services.start_generation(message=reply)
    assert plan is not None
    if plan.reservation is not None:
        plan.reservation.release()
    return [m["content"] for m in plan.messages if m["role"] != "system"]


@pytest.mark.django_db
def test_regenerate_keeps_earlier_replies_as_versions_and_selection_is_remembered(conversation):
    ask(conversation, "one")
    a2 = ask(conversation, "two")
    regenerated = services.regenerate_reply(reply=Message.objects.get(pk=a2.pk))
    finish(regenerated.reply, "second answer to two")
    assert read(conversation) == [
        ("one", "1/1"),
        ("answer to one", "1/1"),
        ("two", "1/1"),
        ("second answer to two", "2/2"),
    ]
    assert Message.objects.filter(pk=a2.pk).exists()  # kept, not replaced

    services.select_version(message=Message.objects.get(pk=a2.pk))
    assert read(conversation)[-1] == ("answer to two", "1/2")
    # The choice is stored: a new message continues the chosen version's branch.
    a3 = ask(conversation, "three")
    assert [c for c, _ in read(conversation)][-3:] == ["answer to two", "three", "answer to three"]
    assert Message.objects.get(pk=a3.pk).parent.parent_id == a2.pk


@pytest.mark.django_db
def test_edit_starts_a_branch_and_the_context_follows_the_chosen_branch_only(conversation):
    ask(conversation, "one")
    ask(conversation, "two")
    ask(conversation, "three")
    two = Message.objects.get(conversation=conversation, content="two")
    edited = services.edit_message(message=two, content="two, edited")
    # The new reply's context: the branch up to the edit, not the old "two"/"three".
    assert upstream_context(edited.reply) == ["one", "answer to one", "two, edited"]
    finish(edited.reply, "answer to two, edited")
    assert read(conversation) == [
        ("one", "1/1"),
        ("answer to one", "1/1"),
        ("two, edited", "2/2"),
        ("answer to two, edited", "1/1"),
    ]
    # The older branch stays reachable through the edited message's versions.
    services.select_version(message=two)
    assert [c for c, _ in read(conversation)] == [
        "one",
        "answer to one",
        "two",
        "answer to two",
        "three",
        "answer to three",
    ]
    assert read(conversation)[2] == ("two", "1/2")
    # A regenerate on the old branch sends that branch's context.
    three_reply = Message.objects.get(conversation=conversation, content="answer to three")
    again = services.regenerate_reply(reply=three_reply)
    assert upstream_context(again.reply) == [
        "one",
        "answer to one",
        "two",
        "answer to two",
        "three",
    ]


@pytest.mark.django_db
def test_guards_while_a_reply_is_in_progress_and_bad_targets(conversation):
    first = ask(conversation, "one")
    pending = services.post_message(conversation=conversation, content="two").reply
    user_two = pending.reply_to
    with pytest.raises(services.ReplyInProgress):
        services.select_version(message=first)
    with pytest.raises(services.ReplyInProgress):
        services.edit_message(message=user_two, content="other")
    with pytest.raises(services.ReplyInProgress):
        services.regenerate_reply(reply=first)
    finish(pending, "done")
    with pytest.raises(services.ChatError) as refused:
        services.edit_message(message=first, content="an assistant reply")
    assert refused.value.code == "not_a_user_message"
    with pytest.raises(services.ChatError) as refused:
        services.edit_message(message=user_two, content="  ")
    assert refused.value.code == "empty_content"


@pytest.mark.django_db
def test_messages_written_directly_read_linearly_and_are_linked_by_a_post(conversation):
    q1 = Message.objects.create(conversation=conversation, role="user", content="q1")
    Message.objects.create(conversation=conversation, role="assistant", reply_to=q1, content="old")
    Message.objects.create(conversation=conversation, role="assistant", reply_to=q1, content="a1")
    assert read(conversation) == [("q1", "1/1"), ("a1", "2/2")]
    reply = services.post_message(conversation=conversation, content="q2").reply
    assert upstream_context(reply) == ["q1", "a1", "q2"]
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == reply.pk
    assert Message.objects.get(content="a1").parent_id == q1.pk


@pytest.mark.django_db
def test_edit_and_regenerate_take_a_rate_limit_slot_and_switching_takes_none(
    conversation, settings
):
    from analytics import quotas

    settings.QUOTA_REQUESTS_PER_MINUTE = 3
    quotas.backend().clear()
    try:
        first = ask(conversation, "one")  # slot 1
        services.select_version(message=first)
        services.select_version(message=first.reply_to)
        finish(services.regenerate_reply(reply=first).reply, "again")  # slot 2
        finish(services.edit_message(message=first.reply_to, content="edited").reply, "x")  # 3
        with pytest.raises(quotas.QuotaExceeded):
            services.edit_message(message=first.reply_to, content="once more")
        with pytest.raises(quotas.QuotaExceeded):
            services.regenerate_reply(reply=first)
        assert conversation.messages.count() == 5  # nothing stored by the refused ones
    finally:
        quotas.backend().clear()


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    executor.loader.build_graph()
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True)
def test_data_migration_keeps_every_conversation_reading_as_before(django_user_model):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("chat")[0]
    old = migrate(("chat", "0003_message_stale_since"))
    try:
        OldUser = old.get_model("auth", "User")
        OldConversation = old.get_model("chat", "Conversation")
        OldMessage = old.get_model("chat", "Message")
        owner = OldUser.objects.create(username="carol", password="!")
        now = timezone.now()

        def add(conv, role, content, reply_to=None, failed=False):
            return OldMessage.objects.create(
                conversation=conv,
                role=role,
                content=content,
                reply_to=reply_to,
                status="failed" if failed else "completed",
                created_at=now,  # equal times: the id decides the order, as before
            )

        busy = OldConversation.objects.create(user=owner, title="regenerated and failed")
        q1 = add(busy, "user", "q1")
        add(busy, "assistant", "a1 first", q1)
        add(busy, "assistant", "a1 second", q1)
        q2 = add(busy, "user", "q2")
        add(busy, "assistant", "", q2, failed=True)
        q3 = add(busy, "user", "q3")
        add(busy, "assistant", "a3", q3)
        empty = OldConversation.objects.create(user=owner, title="empty")
        lone = OldConversation.objects.create(user=owner, title="no reply yet")
        add(lone, "user", "alone")
    finally:
        migrate(latest)

    busy_now = Conversation.objects.get(pk=busy.pk)
    path = selectors.visible_messages(busy_now)
    assert [m.content for m in path] == ["q1", "a1 second", "q2", "", "q3", "a3"]
    assert busy_now.current_leaf_id == path[-1].pk
    assert all(m.parent_id == (path[i - 1].pk if i else None) for i, m in enumerate(path))
    assert [f"{m.versions.index}/{m.versions.count}" for m in path][1] == "2/2"
    assert Conversation.objects.get(pk=empty.pk).current_leaf_id is None
    lone_now = Conversation.objects.get(pk=lone.pk)
    assert [m.content for m in selectors.visible_messages(lone_now)] == ["alone"]
    assert lone_now.current_leaf.content == "alone"
