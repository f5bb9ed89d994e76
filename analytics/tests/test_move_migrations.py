"""The move of the alert and quota models to their own apps (analytics 0010, alerts and quotas
0001-0002): a database with rows in every moved table and a staff user holding moved permissions
is migrated from the last migration before the move to the latest, and back, with Django's
MigrationExecutor. Runs on the database the suite uses (SQLite, or PostgreSQL with
DATABASE_URL)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from analytics import quotas
from analytics.alerts.models import AlertEvent, AlertRule, NotificationChannel
from analytics.quotas.models import QuotaCounter, QuotaEvent, QuotaReservation, UsageQuota

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("analytics", "0009_quotas"), ("alerts", None), ("quotas", None)]
MOVED = {
    "alerts": ["notificationchannel", "alertrule", "alertevent"],
    "quotas": ["usagequota", "quotaevent", "quotacounter", "quotareservation"],
}


def migrate(targets):
    """Migrate to ``targets`` and return the apps (historical models) of the state reached."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    ContentType.objects.clear_cache()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def fresh(user):
    """The user read again (permissions are cached on the instance)."""
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def before_the_move():
    """The database as it was before the move; migrated to the latest again afterwards."""
    old = migrate(BEFORE)
    try:
        yield old
    finally:
        migrate(latest())


def fill_the_moved_tables(old):
    """A row in each moved table and an M2M link, through the models as they were then."""
    get = lambda name: old.get_model("analytics", name)  # noqa: E731
    now = timezone.now()
    User = old.get_model("auth", "User")
    Group = old.get_model("auth", "Group")
    Permission = old.get_model("auth", "Permission")
    staff = User.objects.create(username="ops", is_staff=True, password="!")
    readers = Group.objects.create(name="alert readers")
    exempt = Permission.objects.get(
        content_type__app_label="analytics", codename="exempt_from_quotas"
    )
    view_rules = Permission.objects.get(
        content_type__app_label="analytics", codename="view_alertrule"
    )
    staff.user_permissions.add(exempt)
    readers.permissions.add(view_rules)
    staff.groups.add(readers)

    channel = get("NotificationChannel").objects.create(
        name="ops mail", kind="email", recipients="ops@example.com"
    )
    rule = get("AlertRule").objects.create(
        name="moved rule", metric="daily_cost_usd", comparison="gt", threshold=Decimal("5")
    )
    rule.channels.add(channel)
    get("AlertEvent").objects.create(
        rule=rule,
        value=Decimal("7.5"),
        threshold=Decimal("5"),
        window_start=now - timedelta(hours=1),
        window_end=now,
        acknowledged_by=staff,
    )
    get("UsageQuota").objects.create(user=staff, tokens_per_day=1234)
    get("QuotaEvent").objects.create(
        user=staff,
        limit="tokens_per_day",
        stage="request",
        used=Decimal(1000),
        requested=Decimal(500),
        allowed=Decimal(1234),
        resets_at=now + timedelta(days=1),
    )
    get("QuotaCounter").objects.create(key="moved:counter", value=42, expires_at=now)
    get("QuotaReservation").objects.create(id="moved-reservation", expires_at=now)
    return staff


def test_rows_and_permissions_survive_the_move_and_its_reversal(before_the_move):
    staff = fill_the_moved_tables(before_the_move)
    assert fresh(staff).has_perm("analytics.exempt_from_quotas")

    migrate(latest())

    rule = AlertRule.objects.get(name="moved rule")
    assert [c.name for c in rule.channels.all()] == ["ops mail"]
    event = AlertEvent.objects.get(rule=rule)
    assert event.value == Decimal("7.5") and event.acknowledged_by_id == staff.pk
    assert NotificationChannel.objects.get(name="ops mail").rules.get() == rule
    assert UsageQuota.objects.get(user_id=staff.pk).tokens_per_day == 1234
    assert QuotaEvent.objects.get(user_id=staff.pk).allowed == Decimal(1234)
    assert QuotaCounter.objects.get(key="moved:counter").value == 42
    assert QuotaReservation.objects.filter(id="moved-reservation").exists()
    # The reverse relation from auth's User to a moved model still resolves.
    assert fresh(staff).usage_quota.tokens_per_day == 1234

    # The permissions the user and their group held, under the new labels.
    user = fresh(staff)
    assert user.has_perm("quotas.exempt_from_quotas")
    assert user.has_perm("alerts.view_alertrule")
    assert not user.has_perm("analytics.exempt_from_quotas")
    assert quotas.limits_for(user).exempt  # the code reads the permission by its new name
    for label, models in MOVED.items():
        for model in models:
            assert ContentType.objects.filter(app_label=label, model=model).count() == 1
            assert not ContentType.objects.filter(app_label="analytics", model=model).exists()

    # Reversible: back before the move, the rows and the old permission names are there.
    migrate(BEFORE)
    assert fresh(staff).has_perm("analytics.exempt_from_quotas")
    assert fresh(staff).has_perm("analytics.view_alertrule")
    assert not ContentType.objects.filter(app_label="quotas").exists()
    assert UsageQuota.objects.filter(user_id=staff.pk).exists()  # the table never moved


def test_a_database_made_after_the_move_has_only_the_new_content_types():
    for label, models in MOVED.items():
        for model in models:
            assert ContentType.objects.get_by_natural_key(label, model).model_class() is not None
    assert not ContentType.objects.filter(app_label="analytics", model__in=MOVED["quotas"]).exists()
