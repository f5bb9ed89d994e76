from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self):
        from analytics.alerting import register_metric
        from analytics.models import AlertRule

        from .config import SERVING
        from .guardrails import guardrail_measurement
        from .models import Experiment, PromptVersion, Variant

        register_metric(AlertRule.Metric.EXPERIMENT_GUARDRAIL, guardrail_measurement)
        SERVING.clear_on_change(Experiment, Variant, PromptVersion)
