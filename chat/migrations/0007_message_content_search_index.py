"""A GIN index for the sidebar's full-text search of message contents, on PostgreSQL only
(chat.search: the same ``to_tsvector('simple', COALESCE(content, ''))`` expression, so the
planner uses it). Built CONCURRENTLY, so a large table is not locked against new messages while
it builds: hence a non-atomic migration. SQLite searches with LIKE and gets no index."""

from django.db import migrations

INDEX = "chat_message_content_fts"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON chat_message "
        "USING gin (to_tsvector('simple'::regconfig, COALESCE(content, '')))"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("chat", "0006_conversation_pinned_archived")]

    operations = [migrations.RunPython(create, drop)]
