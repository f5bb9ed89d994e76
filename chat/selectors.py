"""Reads of the chat app. Plain synchronous functions; async callers wrap them with ``db()``."""

import re
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core.query_templates import QueryTemplate

from .models import Conversation, Message
from .sidebar import group_by_date
from .state import ReplyState
from .tree import Tree, linear_parents


def conversations_of(
    user, *, query: str = "", archived: bool = False, limit: int = 200
) -> list[Conversation]:
    """Return the user's conversations (the archived ones, or the others), pinned ones first,
    then newest first; with ``query``, only those whose title or a message matches it."""
    conversations = Conversation.objects.filter(user=user, archived=archived)
    if query.strip():
        conversations = conversations.filter(_matching(user, query))
    return list(conversations.order_by("-pinned", "-updated_at", "-id")[:limit])


def _matching(user, query: str) -> Q:
    """Conversations of ``user`` whose title has every word of ``query``, or one of whose messages
    does: full-text on PostgreSQL (each word a prefix, so results come while typing; the GIN
    index of migration 0007), LIKE elsewhere."""
    words = re.findall(r"\w+", query)[:10] or [query.strip()]
    in_title = Q()
    for word in words:
        in_title &= Q(title__icontains=word)
    messages = Message.objects.filter(conversation__user=user)
    if connection.vendor == "postgresql" and re.fullmatch(r"\w+", words[0]):
        tsquery = " & ".join(f"{word}:*" for word in words)  # \w only: nothing to escape
        messages = messages.annotate(search=SearchVector("content", config="simple")).filter(
            search=SearchQuery(tsquery, config="simple", search_type="raw")
        )
    else:
        for word in words:
            messages = messages.filter(content__icontains=word)
    return in_title | Q(pk__in=messages.values("conversation_id"))


def sidebar_groups(conversations: list[Conversation]) -> list[tuple[str, list[Conversation]]]:
    """Return the conversations in the sidebar's groups (chat.sidebar), days in
    REPORTING_TIME_ZONE."""
    zone = ZoneInfo(settings.REPORTING_TIME_ZONE)
    return group_by_date(
        conversations,
        today=timezone.localdate(timezone.now(), zone),
        day_of=lambda c: timezone.localdate(c.updated_at, zone),
        pinned=lambda c: c.pinned,
    )


def replies_in_progress(conversation: Conversation) -> list[tuple[int, str]]:
    """Return (id, runner channel) of the conversation's replies being written."""
    return list(conversation.messages.in_progress().values_list("pk", "runner_channel"))


def with_reply_in_progress(conversations):
    """Annotate each conversation with ``reply_in_progress`` and ``has_messages``, which
    ``post_message`` uses rather than asking the database again (an empty conversation has no
    tree to link)."""
    busy = Message.objects.in_progress().filter(conversation=OuterRef("pk"))
    written = Message.objects.filter(conversation=OuterRef("pk"))
    return conversations.annotate(reply_in_progress=Exists(busy), has_messages=Exists(written))


_TO_POST_TO = QueryTemplate(
    lambda conversation_id, user_id: with_reply_in_progress(Conversation.objects).filter(
        pk=conversation_id, user_id=user_id
    ),
    conversation_id=0,
    user_id=0,
)


def conversation_to_post_to(user, conversation_id: int) -> Conversation | None:
    """The user's conversation ``conversation_id`` as ``with_reply_in_progress`` reads it, or
    None (another user's, or gone). Read on every post: its SQL is compiled once
    (core.query_templates), a third of its CPU through the ORM."""
    conversation = _TO_POST_TO.first(conversation_id=conversation_id, user_id=user.pk)
    if conversation is not None:
        conversation.user = user  # it is this user: posting reads it, and need not load it again
    return conversation


def _tree(conversation: Conversation, messages: list[Message]) -> tuple[Tree, int | None]:
    """Return the conversation's tree and its current leaf.

    A conversation whose messages were written directly (the demo, fixtures: no current leaf)
    reads the old linear way (chat.tree.linear_parents); posting to it links them for good
    (services.link_tree).
    """
    leaf = conversation.current_leaf_id
    if leaf is None and not any(m.parent_id for m in messages):
        parents, leaf = linear_parents(messages)
    else:
        parents = {m.pk: m.parent_id for m in messages}
    tree = Tree(
        parents,
        {m.pk: m.role for m in messages},
        {m.pk: (m.chosen_at or m.created_at, m.pk) for m in messages},
    )
    if leaf not in parents and messages:  # its leaf was deleted: read the newest branch
        roots = [pk for pk in tree.children.get(None, []) if tree.roles[pk] == "user"]
        leaf = tree.descend(max(roots, key=tree.chosen.__getitem__)) if roots else None
    return tree, leaf


def visible_messages(conversation: Conversation) -> list[Message]:
    """Return the messages of the branch the conversation reads along, root first, each with
    ``versions`` (its siblings: chat.tree.Versions) and ``feedback_rating``."""
    messages = list(conversation.messages.select_related("feedback"))
    tree, leaf = _tree(conversation, messages)
    by_id = {m.pk: m for m in messages}
    path = [by_id[pk] for pk in tree.path_to(leaf)]
    for message in path:
        feedback = getattr(message, "feedback", None)
        message.feedback_rating = ("up" if feedback.rating > 0 else "down") if feedback else ""
        message.versions = tree.versions(message.pk)
    return path


def tree_of(conversation: Conversation) -> tuple[Tree, int | None]:
    """Return the conversation's tree (ids only) and its current leaf."""
    return _tree(conversation, list(conversation.messages.only(*_TREE_FIELDS)))


_TREE_FIELDS = ("id", "role", "reply_to_id", "parent_id", "chosen_at", "created_at")
_CONTEXT_FIELDS = ("conversation_id", "content", "status")


def context_before(message: Message) -> list[Message]:
    """Return the messages ``message`` follows on its own branch, root first (the context of a
    reply: never another branch's messages). Only what a context needs is read (not the
    rendered ``html``, which doubles a long conversation's bytes)."""
    return context_through(message)[:-1]


def context_through(message: Message) -> list[Message]:
    """``context_before(message)`` and ``message`` itself, read as it is stored."""
    messages = list(message.conversation.messages.only(*_TREE_FIELDS, *_CONTEXT_FIELDS))
    tree, _ = _tree(message.conversation, messages)
    by_id = {m.pk: m for m in messages}
    return [by_id[pk] for pk in tree.path_to(message.pk)]


def reply_state(message_id: int, *, user_id: int | None = None) -> ReplyState | None:
    query = Message.objects.select_related("conversation").filter(
        pk=message_id, role=Message.Role.ASSISTANT
    )
    if user_id is not None:
        query = query.filter(conversation__user_id=user_id)
    message = query.first()
    return ReplyState.from_message(message, now=timezone.now()) if message else None
