"""Admin: usage quotas of users and groups (editable), their overview page, and refusals."""

from django.contrib import admin
from django.urls import path

from core.admin_mixins import ReadOnlyAdminMixin

from . import views
from .models import QuotaEvent, UsageQuota


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
            path("overview/", wrap(self.overview_view), name="quotas_overview"),
            *super().get_urls(),
        ]

    def overview_view(self, request):
        return views.quotas_overview(request, self.admin_site)

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
