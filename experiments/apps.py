from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self):
        from analytics.alerts.alerting import register_metric
        from analytics.alerts.models import AlertRule
        from core.jobs import register_job

        from .config import SERVING
        from .guardrails import check_guardrails, guardrail_measurement
        from .models import Experiment, PromptVersion, Variant

        register_metric(AlertRule.Metric.EXPERIMENT_GUARDRAIL, guardrail_measurement)
        SERVING.clear_on_change(Experiment, Variant, PromptVersion)
        # Before the alerts job, whose guardrail rule reports the pauses it makes.
        register_job("guardrails", lambda: check_guardrails, order=20)
