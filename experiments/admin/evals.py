"""Runs of ``manage.py eval_prompts``: read-only, made by the command."""

from django.contrib import admin

from core.admin_mixins import ReadOnlyAdminMixin

from ..models import EvalResult, EvalRun


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    fields = ["index", "prompt", "scores", "judge_reason", "error"]
    readonly_fields = ["index", "prompt", "scores", "judge_reason", "error"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvalRun)
class EvalRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    deletable = True

    list_display = ["experiment", "started_at", "finished_at", "judge_model", "summary"]
    list_filter = ["experiment"]
    readonly_fields = [
        "experiment",
        "prompts_file",
        "judge_model",
        "started_at",
        "finished_at",
        "summary",
    ]
    inlines = [EvalResultInline]
