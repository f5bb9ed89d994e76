from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertsConfig(AppConfig):
    name = "analytics.alerts"
    label = "alerts"
    verbose_name = "AI alerts"

    def ready(self):
        from analytics.apps import ensure_dashboard_group
        from core.jobs import register_job

        from .jobs import AlertJobs

        # Dashboard readers may view alert rules, events and channels (webhook URLs masked).
        post_migrate.connect(ensure_dashboard_group, sender=self)
        register_job("alerts", lambda: AlertJobs().run_due, order=35)
