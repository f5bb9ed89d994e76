from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save

DASHBOARD_GROUP = "Analytics viewers"


def ensure_dashboard_group(sender, using, **kwargs):
    """Create the group that lets staff without superuser rights read the dashboard."""
    from django.contrib.auth.models import Group, Permission

    permission = (
        Permission.objects.using(using)
        .filter(content_type__app_label="analytics", codename="view_ai_dashboard")
        .first()
    )
    if permission is None:
        return
    group, _ = Group.objects.using(using).get_or_create(name=DASHBOARD_GROUP)
    group.permissions.add(
        permission,
        *Permission.objects.using(using).filter(
            content_type__app_label="analytics", codename__startswith="view_"
        ),
    )


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "AI analytics"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from core.demo import register_seeder
        from core.jobs import register_job

        from . import metrics  # noqa: F401 (its series join core's registry, which /metrics serves)
        from .demo import seed_demo_history
        from .jobs import AnalyticsJobs
        from .models import ModelPrice, UsageQuota
        from .pricing import PRICES
        from .quotas import LIMITS

        post_migrate.connect(ensure_dashboard_group, sender=self)
        register_job("analytics", lambda: AnalyticsJobs().run_due, order=30)
        register_seeder("call_history", seed_demo_history, order=20)
        PRICES.clear_on_change(ModelPrice)
        # Limits follow the user's quota rows, groups, permissions and superuser flag. A saved
        # user (a login saves last_login) forgets only that user's limits.
        User = get_user_model()
        LIMITS.clear_on_change(
            UsageQuota,
            Group,
            m2m=[User.groups.through, User.user_permissions.through, Group.permissions.through],
        )
        forget_user = LIMITS.on_change(key=lambda instance, **kwargs: instance.pk)
        post_save.connect(forget_user, sender=User, weak=False, dispatch_uid="limits:user:save")
        post_delete.connect(forget_user, sender=User, weak=False, dispatch_uid="limits:user:del")
