"""Admin: model prices (editable), AI calls (read-only), the usage dashboard and cost report.

Alerts and quotas have their own apps and admin (analytics/alerts/admin.py,
analytics/quotas/admin.py).

The rollup tables (CallRollup, UserDailyUsage, RequestMinute, JobState) are not registered: the
dashboard is their reading interface, and they are rebuilt from raw calls, never edited.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from core.admin_mixins import ReadOnlyAdminMixin
from core.formatting import format_usd

from . import api_tokens, presenters, selectors, views
from .models import AICall, APIToken, ModelPrice


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

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj):
        # Money as money (digits enough for one call's cost: $0.000123), like the dashboard.
        return "unpriced" if obj.cost_usd is None else format_usd(obj.cost_usd)


class APITokenForm(forms.ModelForm):
    class Meta:
        model = APIToken
        fields = ("user", "name", "expires_at")

    def clean_expires_at(self):
        end = self.cleaned_data["expires_at"]
        now = timezone.now()
        if end <= now:
            raise ValidationError("The token's end must be in the future.")
        if end > now + timedelta(days=api_tokens.API_TOKEN_MAX_DAYS):
            raise ValidationError(
                f"The token's end may be at most {api_tokens.API_TOKEN_MAX_DAYS} days ahead: "
                "make a new token when it ends."
            )
        return end


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    """Keys to the read-only analytics API: superusers create them per staff user, with an end
    (90 days ahead by default), and revoke them; the key is shown once, on creation, and only
    its hash is kept."""

    form = APITokenForm
    list_display = (
        "name",
        "user",
        "prefix",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "state",
    )
    list_select_related = ("user", "created_by")
    search_fields = ("name", "user__username", "prefix")
    actions = ["revoke"]

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request):
        return self._superuser(request)

    def has_change_permission(self, request, obj=None):
        return False  # a token is created and revoked, never edited

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name", "expires_at")
        return (
            "user",
            "name",
            "prefix",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["queryset"] = (
                get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="state")
    def state(self, obj):
        if obj.revoked_at:
            return f"revoked {obj.revoked_at:%Y-%m-%d %H:%M}"
        return "expired" if obj.expires_at <= timezone.now() else "active"

    def save_model(self, request, obj, form, change):
        request._api_token_key = api_tokens.issue_api_token(token=obj, created_by=request.user)

    def response_add(self, request, obj, post_url_continue=None):
        # The key is shown on this page only: not in a message (it would travel in a cookie),
        # not in the database (only its hash is kept).
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "key": request._api_token_key,
            "changelist_url": reverse("admin:analytics_apitoken_changelist"),
        }
        return TemplateResponse(request, "admin/analytics/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = api_tokens.revoke_api_tokens(token_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
