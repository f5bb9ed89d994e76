from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class QuotasConfig(AppConfig):
    name = "analytics.quotas"
    label = "quotas"
    verbose_name = "AI quotas"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from analytics.apps import ensure_dashboard_group
        from analytics.signals import call_recorded
        from core.jobs import register_job

        from .jobs import QuotaJobs
        from .limits import LIMITS
        from .models import UsageQuota
        from .receivers import charge_recorded_call

        # Every recorded call is charged to the meters (analytics announces it after commit).
        call_recorded.connect(charge_recorded_call, dispatch_uid="quotas:charge")
        post_migrate.connect(ensure_dashboard_group, sender=self)
        register_job("quotas", lambda: QuotaJobs().run_due, order=40)
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
