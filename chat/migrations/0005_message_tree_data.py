"""Link the messages stored before the tree (0004) so that every conversation reads as it did.

The old reading: user messages in order, each followed by its latest reply (earlier replies to
the same message, from Regenerate, were hidden). Each user message now follows the latest reply
of the one before, each reply its user message (so hidden replies become older versions of that
turn), and the conversation's current leaf is where the old reading ended. A frozen copy of
chat.tree.linear_parents: a migration must not change when the app's code does.
"""

from itertools import groupby

from django.db import migrations

BATCH = 2000


def linear_parents(rows):
    """rows: (id, role, reply_to_id) of one conversation in (created_at, id) order."""
    latest_reply = {}
    for pk, role, reply_to in rows:
        if role == "assistant" and reply_to is not None:
            latest_reply[reply_to] = pk
    parents = {}
    tail = None
    for pk, role, reply_to in rows:
        if role == "user":
            parents[pk] = tail
            tail = latest_reply.get(pk, pk)
        else:
            parents[pk] = reply_to
    return parents, tail


def link_messages(apps, schema_editor):
    Message = apps.get_model("chat", "Message")
    Conversation = apps.get_model("chat", "Conversation")
    conversation_ids = sorted(set(Message.objects.values_list("conversation_id", flat=True)))
    # Read a batch of conversations whole, then write: no cursor stays open across the writes.
    for start in range(0, len(conversation_ids), BATCH // 10):
        batch = conversation_ids[start : start + BATCH // 10]
        rows = (
            Message.objects.filter(conversation_id__in=batch)
            .order_by("conversation_id", "created_at", "id")
            .values_list("conversation_id", "id", "role", "reply_to_id")
        )
        linked = []
        leaves = []
        for conversation_id, group in groupby(rows, key=lambda row: row[0]):
            parents, leaf = linear_parents([row[1:] for row in group])
            linked += [Message(pk=pk, parent_id=parent) for pk, parent in parents.items() if parent]
            leaves.append(Conversation(pk=conversation_id, current_leaf_id=leaf))
        Message.objects.bulk_update(linked, ["parent"], batch_size=BATCH)
        Conversation.objects.bulk_update(leaves, ["current_leaf"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_message_tree")]

    operations = [migrations.RunPython(link_messages, migrations.RunPython.noop)]
