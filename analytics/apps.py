from django.apps import AppConfig
from django.db.models.signals import post_migrate

DASHBOARD_GROUP = "Analytics viewers"


def ensure_dashboard_group(sender, using, **kwargs):
    """Create the group that lets staff without superuser rights read the dashboard.

    It holds the dashboard permission and the view permissions of the app that just migrated
    (``sender``): analytics, and its sub-apps alerts and quotas, which connect this too.
    """
    from django.contrib.auth.models import Group, Permission

    permissions = Permission.objects.using(using)
    permission = permissions.filter(
        content_type__app_label="analytics", codename="view_ai_dashboard"
    ).first()
    if permission is None:
        return
    group, _ = Group.objects.using(using).get_or_create(name=DASHBOARD_GROUP)
    group.permissions.add(
        permission,
        *permissions.filter(content_type__app_label=sender.label, codename__startswith="view_"),
    )


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "AI analytics"

    def ready(self):
        from core.demo import register_seeder
        from core.jobs import register_job

        from . import metrics  # noqa: F401 (its series join core's registry, which /metrics serves)
        from .demo import seed_demo_history
        from .jobs import AnalyticsJobs
        from .models import ModelPrice
        from .pricing import PRICES

        post_migrate.connect(ensure_dashboard_group, sender=self)
        register_job("analytics", lambda: AnalyticsJobs().run_due, order=30)
        register_seeder("call_history", seed_demo_history, order=20)
        PRICES.clear_on_change(ModelPrice)
