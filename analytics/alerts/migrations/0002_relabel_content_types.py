"""Relabel the moved models' content types from ``analytics`` to ``alerts``.

Their permissions point at the content type rows, so the permissions that users and staff groups
hold keep working under the new label (``alerts.<codename>``, codenames unchanged). A database
made after the move has no old rows: nothing to do, Django creates the new ones after migrating.
"""

from django.db import migrations

MODELS = ["notificationchannel", "alertrule", "alertevent"]


def relabel(old: str, new: str):
    def run(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        types = ContentType.objects.using(schema_editor.connection.alias)
        for model in MODELS:
            # A row under the new label already (made by a migrate run between the two
            # migrations) would clash on (app_label, model): the old one, which the
            # permissions point at, wins and the empty new one goes.
            if types.filter(app_label=old, model=model).exists():
                types.filter(app_label=new, model=model).delete()
                types.filter(app_label=old, model=model).update(app_label=new)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(relabel("analytics", "alerts"), relabel("alerts", "analytics")),
    ]
