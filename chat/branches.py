"""Writes of a conversation's tree (chat.tree): linking the messages written before it, and
choosing the branch the conversation reads along."""

from django.db import transaction
from django.utils import timezone

from . import selectors
from .errors import ReplyInProgress
from .models import Conversation, Message


def link_tree(*, conversation: Conversation) -> int | None:
    """Store the parent pointers of a conversation whose messages were written directly (read
    the old linear way until then: chat.selectors), and return its current leaf."""
    if conversation.current_leaf_id is not None:  # a tree already: nothing to read
        return conversation.current_leaf_id
    if getattr(conversation, "has_messages", True) is False:  # chat.selectors annotated it
        return None
    tree, leaf = selectors.tree_of(conversation)
    if leaf is None:
        return None
    unlinked = [
        Message(pk=pk, parent_id=parent)
        for pk, parent in tree.parents.items()
        if parent is not None
    ]
    Message.objects.bulk_update(unlinked, ["parent"])
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=leaf)
    conversation.current_leaf_id = leaf
    return leaf


def select_version(*, message: Message) -> int:
    """Make the conversation read along ``message``'s branch (down to the version last chosen
    at each later turn); remembered for every client. Return the new current leaf."""
    conversation = message.conversation
    if conversation.messages.in_progress().exists():
        raise ReplyInProgress("Wait for the reply being written before switching versions.")
    with transaction.atomic():
        link_tree(conversation=conversation)
        now = timezone.now()
        Message.objects.filter(pk=message.pk).update(chosen_at=now)
        message.chosen_at = now
        tree, _ = selectors.tree_of(conversation)
        leaf = tree.descend(message.pk)
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=leaf)
        conversation.current_leaf_id = leaf
    return leaf
