"""Admin: notification channels, alert rules (editable) and alert events (acknowledged only)."""

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from .models import AlertEvent, AlertRule, NotificationChannel
from .notify import calls_url, dashboard_url, redacted
from .presenters import rule_history_context

# Rules about failures: their events link to the failed calls as well.
FAILURE_METRICS = {AlertRule.Metric.SUCCESS_RATE, AlertRule.Metric.HTTP_ERROR_RATE}


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "format", "target", "enabled"]
    list_filter = ["kind", "format", "enabled"]

    @admin.display(description="Target")
    def target(self, channel):
        # A webhook URL usually carries its token in the path or query: show the host only.
        if channel.kind == NotificationChannel.Kind.WEBHOOK:
            return redacted(channel.url)
        return channel.recipients or "staff with the dashboard permission"

    # Staff who may only view channels see a webhook's scheme and host, never its URL (whose
    # path or query is usually the token): the form's field is swapped for the masked one.
    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or self.has_change_permission(request, obj):  # None: the add form
            return fields
        return ["webhook_address" if f == "url" else f for f in fields if f != "webhook_address"]

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is None or self.has_change_permission(request, obj):  # None: the add form
            return readonly
        return [*readonly, "webhook_address"]

    @admin.display(description="URL")
    def webhook_address(self, channel):
        return redacted(channel.url) if channel.url else "-"


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "metric",
        "condition",
        "window_minutes",
        "min_samples",
        "cooldown_minutes",
        "enabled",
    ]
    list_editable = ["enabled"]
    list_filter = ["enabled", "metric"]
    filter_horizontal = ["channels"]

    @admin.display(description="Fires when", ordering="threshold")
    def condition(self, rule):
        return rule.condition

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The threshold is stored in the metric's base unit (ratios, seconds, dollars): say which.
        if obj is not None and obj.metric in AlertRule.THRESHOLD_HELP:
            units = AlertRule.THRESHOLD_HELP[obj.metric]
        else:
            units = "; ".join(
                f"{AlertRule.Metric(metric).label}: {text}"
                for metric, text in AlertRule.THRESHOLD_HELP.items()
            )
        kwargs["help_texts"] = {
            "threshold": f"In the metric's unit — {units}.",
            **kwargs.get("help_texts", {}),
        }
        return super().get_form(request, obj, change, **kwargs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        rule = self.get_object(request, object_id)
        if rule is not None:
            extra_context = {**(extra_context or {}), **rule_history_context(rule)}
        return super().change_view(request, object_id, form_url, extra_context)


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(acknowledged_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(acknowledged_at__isnull=True)
        return queryset


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = [
        "rule",
        "state",
        "shown_value",
        "shown_condition",
        "samples",
        "started_at",
        "resolved_at",
        "acknowledged_by",
        "calls",
        "dashboard",
    ]
    list_filter = ["state", "rule", AcknowledgedFilter]
    date_hierarchy = "started_at"
    list_select_related = ["rule", "acknowledged_by"]
    actions = ["acknowledge"]
    readonly_fields = [
        "rule",
        "state",
        "shown_value",
        "shown_condition",
        "samples",
        "window_start",
        "window_end",
        "started_at",
        "resolved_at",
        "last_notified_at",
        "notifications",
        "acknowledged_by",
        "acknowledged_at",
        "calls",
        "dashboard",
    ]
    # Read-only, each in its unit (``shown_value`` stands for the raw ``value``): no form field.
    fields = tuple(readonly_fields)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="value", ordering="value")
    def shown_value(self, event):
        return event.value_display

    @admin.display(description="fires when", ordering="threshold")
    def shown_condition(self, event):
        return event.condition

    @admin.display(description="Calls")
    def calls(self, event):
        if event.rule.metric in FAILURE_METRICS:
            return format_html(
                '<a href="{}" data-calls="all">calls in the window</a> '
                '(<a href="{}" data-calls="failed">failed</a>)',
                calls_url(event),
                calls_url(event, failed_only=True),
            )
        return format_html(
            '<a href="{}" data-calls="all">calls in the window</a>', calls_url(event)
        )

    @admin.display(description="Dashboard")
    def dashboard(self, event):
        return format_html('<a href="{}">window on the dashboard</a>', dashboard_url(event))

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset):
        count = queryset.filter(acknowledged_at__isnull=True).update(
            acknowledged_by=request.user, acknowledged_at=timezone.now()
        )
        self.message_user(request, f"Acknowledged {count} alert(s).")
