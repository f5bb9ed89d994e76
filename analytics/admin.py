"""Admin: model prices (editable), AI calls (read-only), the usage dashboard and cost report.

The rollup tables (CallRollup, UserDailyUsage, RequestMinute, JobState) are not registered: the
dashboard is their reading interface, and they are rebuilt from raw calls, never edited.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from core.admin_mixins import ReadOnlyAdminMixin

from . import presenters, selectors, views
from .models import (
    AICall,
    AlertEvent,
    AlertRule,
    ModelPrice,
    NotificationChannel,
    QuotaEvent,
    UsageQuota,
)
from .notify import dashboard_url, redacted
from .quotas import views as quota_views


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "input_per_million",
        "cached_price",
        "output_per_million",
        "effective_from",
        "source",
    )
    search_fields = ("model",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "model",
                    "input_per_million",
                    "cached_input_per_million",
                    "output_per_million",
                    "effective_from",
                    "source",
                ),
                "description": (
                    "A call's cost is computed when it is recorded, from the price in effect on "
                    "its day. To change a price, add a row with a later “effective from”: "
                    "editing a row does not reprice calls already recorded (manage.py "
                    "reprice_calls does, on purpose)."
                ),
            },
        ),
    )

    @admin.display(
        description="USD per 1M cached input tokens",
        ordering="cached_input_per_million",
        empty_value="same as input",
    )
    def cached_price(self, obj):
        return obj.cached_input_per_million


class RollupValuesFilter(admin.SimpleListFilter):
    """Choices from the daily rollups: a DISTINCT over every raw call is a full-table scan.

    A value first seen in the last minute appears once the monitor has rolled it up.
    """

    field = ""

    def lookups(self, request, model_admin):
        values = selectors.rollup_values(self.field)
        return [
            (value or presenters.EMPTY_FILTER_VALUE, value or presenters.NO_VALUE_LABEL)
            for value in values
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(
            **{self.field: "" if value == presenters.EMPTY_FILTER_VALUE else value}
        )


class ModelFilter(RollupValuesFilter):
    title = "model"
    parameter_name = field = "model"


class TaskTypeFilter(RollupValuesFilter):
    title = "task type"
    parameter_name = field = "task_type"


class VariantFilter(RollupValuesFilter):
    title = "variant"
    parameter_name = field = "variant"


@admin.register(AICall)
class AICallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Raw calls, read-only: they are the record the costs and rollups are computed from."""

    list_display = (
        "created_at",
        "user",
        "model",
        "task_type",
        "variant",
        "status",
        "error_code",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
        "ttft_ms",
        "request_id",
    )
    list_filter = (
        "status",
        ModelFilter,
        TaskTypeFilter,
        VariantFilter,
        "is_demo",
        "tokens_estimated",
    )
    date_hierarchy = "created_at"
    search_fields = ("request_id", "user__username", "user__email")
    search_help_text = "An exact request id, username or email address."
    list_select_related = ("user",)
    # Counting every row of a large table on each page load is what makes changelists slow.
    show_full_result_count = False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="analytics_dashboard"),
            path("report/", wrap(self.report_view), name="analytics_report"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        return views.dashboard(request, self.admin_site)

    def report_view(self, request):
        return views.report(request, self.admin_site)

    def get_search_results(self, request, queryset, search_term):
        """Match a request id, username or email exactly: indexed lookups, not ``LIKE '%x%'``
        over every call."""
        term = search_term.strip()
        if not term:
            return queryset, False
        users = get_user_model().objects.filter(Q(username__iexact=term) | Q(email__iexact=term))
        return queryset.filter(Q(request_id=term) | Q(user__in=users.values("pk"))), False

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, obj):
        return "unpriced" if obj.cost_usd is None else obj.cost_usd


# --- Alerts ----------------------------------------------------------------------------------


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

    @admin.display(description="Fires when")
    def condition(self, rule):
        return f"{rule.get_comparison_display()} {rule.threshold.normalize():f}"


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
        "value",
        "threshold",
        "samples",
        "started_at",
        "resolved_at",
        "acknowledged_by",
        "dashboard",
    ]
    list_filter = ["state", "rule", AcknowledgedFilter]
    date_hierarchy = "started_at"
    list_select_related = ["rule", "acknowledged_by"]
    actions = ["acknowledge"]
    readonly_fields = [
        "rule",
        "state",
        "value",
        "threshold",
        "samples",
        "window_start",
        "window_end",
        "started_at",
        "resolved_at",
        "last_notified_at",
        "notifications",
        "acknowledged_by",
        "acknowledged_at",
        "dashboard",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Dashboard")
    def dashboard(self, event):
        return format_html('<a href="{}">window on the dashboard</a>', dashboard_url(event))

    @admin.action(description="Acknowledge the selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset):
        count = queryset.filter(acknowledged_at__isnull=True).update(
            acknowledged_by=request.user, acknowledged_at=timezone.now()
        )
        self.message_user(request, f"Acknowledged {count} alert(s).")


# --- Quotas ----------------------------------------------------------------------------------


@admin.register(UsageQuota)
class UsageQuotaAdmin(admin.ModelAdmin):
    list_display = (
        "target",
        "requests_per_minute",
        "tokens_per_day",
        "cost_per_day_usd",
        "cost_per_month_usd",
        "note",
        "updated_at",
    )
    list_select_related = ("user", "group")
    autocomplete_fields = ("user", "group")
    search_fields = ("user__username", "user__email", "group__name")
    fieldsets = (
        (
            None,
            {
                "fields": ("user", "group"),
                "description": (
                    "Limits of one user or one group (not both). A blank limit inherits: the "
                    "user's own row, then the most generous of their groups' rows, then the "
                    "QUOTA_* settings. Holders of the permission “Is exempt from per-user AI "
                    "quotas” skip these limits; the global daily cap applies to everyone."
                ),
            },
        ),
        (
            "Limits (blank: inherit)",
            {
                "fields": (
                    "requests_per_minute",
                    "tokens_per_day",
                    "cost_per_day_usd",
                    "cost_per_month_usd",
                    "note",
                )
            },
        ),
    )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("overview/", wrap(self.overview_view), name="analytics_quota_overview"),
            *super().get_urls(),
        ]

    def overview_view(self, request):
        return quota_views.quotas_overview(request, self.admin_site)

    @admin.display(description="user or group")
    def target(self, obj):
        return f"user {obj.user}" if obj.user_id else f"group {obj.group}"


@admin.register(QuotaEvent)
class QuotaEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "limit", "stage", "used", "requested", "allowed")
    list_filter = ("limit", "stage")
    date_hierarchy = "created_at"
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    show_full_result_count = False
    deletable = True
