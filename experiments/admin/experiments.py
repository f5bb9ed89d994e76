"""Experiments: fields and variants editable while a draft only; the status changes only through
the life-cycle buttons (one service each, logged in the admin history); the comparison page
(``<id>/compare/``) needs the view permission. No inline script, style or handler (CSP)."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .. import selectors
from ..models import Experiment, PromptVersion, Variant
from .comparison import daily_charts, difference_tables, srm_summary, variant_row
from .lifecycle import LIFECYCLE_ACTIONS, LifecycleMixin
from .protection import STYLESHEET, refuse_protected


class VariantForm(forms.ModelForm):
    def validate_constraints(self):
        """Leave "one control" to the formset, which sees every row of the submission: checked
        row by row against the database, moving the control from one variant to another would be
        refused. (The current control is listed, so saved, first: the database never sees two.)"""
        # ModelForm._post_clean's own helpers (private, so not in django-stubs).
        exclude = self._get_validation_exclusions() | {"is_control"}  # type: ignore[attr-defined]
        try:
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as e:
            self._update_errors(e)  # type: ignore[attr-defined]


class VariantInlineFormSet(forms.BaseInlineFormSet):
    """At most one control (the database refuses two), and versions of the experiment's prompt."""

    def clean(self):
        super().clean()
        if any(self.errors) or self.instance.status != Experiment.Status.DRAFT:
            return  # a started experiment's variants are view-only (their data is not posted)
        prompt = self.instance.prompt_name
        controls = 0
        for form in self.forms:
            if self._should_delete_form(form) or not form.cleaned_data:  # type: ignore[attr-defined]
                continue
            controls += bool(form.cleaned_data.get("is_control"))
            version = form.cleaned_data.get("prompt_version")
            if isinstance(version, PromptVersion) and prompt and version.name != prompt:
                form.add_error(
                    "prompt_version",
                    f"{version} is a version of {version.name}, not of {prompt}.",
                )
        if controls > 1:
            raise ValidationError("An experiment has one control variant, not several.")


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    formset = VariantInlineFormSet
    fields = ("key", "prompt_version", "weight", "is_control")
    extra = 0

    def get_extra(self, request, obj=None, **kwargs):
        return 2 if obj is None else 0

    def _is_draft(self, obj) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._is_draft(obj) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(LifecycleMixin):
    list_display = (
        "key",
        "prompt_name",
        "status",
        "traffic_percent",
        "started_at",
        "ended_at",
        "comparison",
    )
    list_filter = ("status", "prompt_name")
    search_fields = ("key", "prompt_name", "description")
    inlines = [VariantInline]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "key",
                    "description",
                    "prompt_name",
                    "status",
                    "traffic_percent",
                    "salt",
                    "min_sample",
                )
            },
        ),
        (
            "Guardrails",
            {
                "fields": (
                    "guardrail_error_rate_margin",
                    "guardrail_cost_margin",
                    "guardrail_min_calls",
                    "paused_by_guardrail_at",
                    "guardrail_reason",
                )
            },
        ),
        ("Dates", {"fields": ("created_at", "started_at", "ended_at")}),
    )
    # Never edited in the form: the status changes only through the life-cycle buttons.
    always_read_only = (
        "status",
        "paused_by_guardrail_at",
        "guardrail_reason",
        "created_at",
        "started_at",
        "ended_at",
    )

    class Media:
        css = {"all": (STYLESHEET,)}

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            return flatten_fieldsets(self.fieldsets)  # the salt above all: never change it mid-run
        return self.always_read_only

    def get_changeform_initial_data(self, request):
        return {
            "prompt_name": settings.CHAT_PROMPT_NAME,
            **super().get_changeform_initial_data(request),
        }

    def save_model(self, request, obj, form, change):
        if not change:
            obj.save()
            return
        # Only what the form changed: a full save would write back the status read at the start
        # of the request, undoing a button pressed meanwhile.
        names = {field.name for field in obj._meta.concrete_fields}
        changed = [name for name in form.changed_data if name in names]
        if changed:
            obj.save(update_fields=changed)

    def has_delete_permission(self, request, obj=None):
        # A started experiment's exposures are its record: complete it instead.
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        def reason(experiment):
            if experiment.status == Experiment.Status.DRAFT:
                return ""
            return f"it is {experiment.status}; only drafts can be deleted"

        return refuse_protected(
            self, request, super().get_deleted_objects(objs, request), objs, reason
        )

    @admin.display(description="comparison")
    def comparison(self, obj):
        return format_html('<a href="{}">Compare</a>', self._url("compare", obj))

    # --- Custom URLs ------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        urls = [
            path(
                "<path:object_id>/compare/",
                wrap(self.compare_view),
                name=f"{prefix}_compare",
            )
        ]
        urls += [
            path(
                f"<path:object_id>/{action}/",
                wrap(self.lifecycle_view),
                {"action": action},
                name=f"{prefix}_{action}",
            )
            for action in LIFECYCLE_ACTIONS
        ]
        return urls + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            is_draft = obj.status == Experiment.Status.DRAFT
            context.update(
                compare_url=self._url("compare", obj), **self.lifecycle_context(request, obj)
            )
            if not is_draft:
                # Nothing in the form is editable once started: no save buttons to confuse.
                context.update(
                    show_save=False, show_save_and_continue=False, show_save_and_add_another=False
                )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- The comparison page ----------------------------------------------------------------------

    def compare_view(self, request, object_id):
        experiment = self.get_object(request, unquote(object_id))
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        if experiment is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        comparison = selectors.compare(experiment)
        version_ids = {
            v.key: v.prompt_version_id for v in selectors.experiment_variants(experiment)
        }
        evaluation = selectors.latest_eval(experiment)
        context = {
            **self.admin_site.each_context(request),
            **self.lifecycle_context(request, experiment),
            "title": f"Comparison: {experiment.key}",
            "opts": self.opts,
            "experiment": experiment,
            "change_url": self._url("change", experiment),
            "changelist_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"
            ),
            "history_url": self._url("history", experiment),
            "min_sample": comparison.min_sample,
            "variants": [variant_row(v, version_ids.get(v.key)) for v in comparison.variants],
            "differences": difference_tables(comparison),
            "srm": srm_summary(comparison),
            "has_control": any(v.is_control for v in comparison.variants),
            "daily_charts": daily_charts(selectors.daily_metrics(experiment), comparison.variants),
            "eval_run": evaluation.run if evaluation else None,
        }
        if evaluation is not None:
            context.update(
                eval_rows=evaluation.rows,
                eval_unjudged=evaluation.unjudged,
                eval_total=evaluation.total,
            )
        return TemplateResponse(request, "admin/experiments/experiment/compare.html", context)
