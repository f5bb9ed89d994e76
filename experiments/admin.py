"""Admin: prompt versions (immutable once served) and experiments (life cycle, comparison page).

* A prompt version that has served a call is never edited in place: saving its form makes the next
  version of the prompt (``services.new_prompt_version``) and leaves the old one as it was. Its
  change page shows what changed from the previous version (a unified diff, escaped).
* An experiment's fields and variants are editable while it is a draft only; its status changes
  only through the buttons on its change page, which post to the life-cycle URLs below, call one
  service each and are logged in the object's admin history (who and when).
* The comparison page (``<id>/compare/``) shows ``selectors.compare``: per-variant numbers, each
  treatment against the control, and the sample-ratio check. It needs the view permission.

Every page here is server-rendered for the site's CSP: no inline script, style or handler.
"""

import difflib
import math
from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.formatting import format_count, format_ms, format_percent

from . import services
from .config import SERVING
from .models import EvalResult, EvalRun, Experiment, PromptVersion, Variant
from .selectors import compare

STYLESHEET = "experiments/experiments.css"

# --- Prompt versions ----------------------------------------------------------------------------

# What an edit may change; the name is fixed once a version exists (it identifies the prompt).
PROMPT_FIELDS = ("system_prompt", "model", "temperature", "max_tokens", "notes")
# Parameters the diff shows next to the system prompt's lines.
DIFF_PARAMETERS = ("model", "temperature", "max_tokens")


def protected_reason(version: PromptVersion) -> str:
    """Why ``version`` may not be deleted ("" when it may)."""
    if version.first_served_at is not None:
        return "it has served calls"
    keys = sorted(
        set(
            Variant.objects.filter(prompt_version=version).values_list("experiment__key", flat=True)
        )
    )
    return f"experiment {', '.join(keys)} uses it" if keys else ""


def previous_version(version: PromptVersion) -> PromptVersion | None:
    return (
        PromptVersion.objects.filter(name=version.name, version__lt=version.version)
        .order_by("-version")
        .first()
    )


def _diff_class(line: str) -> str:
    if line.startswith("@@"):
        return "diff-hunk"
    if line.startswith("+"):
        return "diff-added"
    if line.startswith("-"):
        return "diff-removed"
    return "diff-context"


def _diff_block(lines: list[str], label: str, *, headers: int = 0):
    """A <pre> of diff lines, one escaped <span> per line with its class; the first ``headers``
    lines are the ---/+++ file lines (by position: a removed "-- x" line also starts "---")."""
    classes = ("diff-file" if i < headers else _diff_class(line) for i, line in enumerate(lines))
    return format_html(
        '<pre class="prompt-diff" data-diff="{}">{}</pre>',
        label,
        format_html_join("", '<span class="{}">{}</span>', zip(classes, lines, strict=True)),
    )


def render_diff(old: PromptVersion, new: PromptVersion):
    """Return the changes from ``old`` to ``new``: parameters, then the system prompt's diff."""
    parameters = []
    for name in DIFF_PARAMETERS:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            parameters += [f"-{name}: {before}", f"+{name}: {after}"]
    prompt = list(
        difflib.unified_diff(
            old.system_prompt.splitlines(),
            new.system_prompt.splitlines(),
            fromfile=f"{old} system prompt",
            tofile=f"{new} system prompt",
            lineterm="",
        )
    )
    parts = [format_html('<p class="prompt-diff-title">Compared with {}:</p>', str(old))]
    if parameters:
        parts.append(_diff_block(parameters, "parameters"))
    if prompt:
        parts.append(_diff_block(prompt, "system_prompt", headers=2))
    else:
        parts.append(format_html('<p class="prompt-diff-same">{}</p>', "Same system prompt."))
    if not parameters and not prompt:
        parts = [format_html('<p class="prompt-diff-same">Same as {}.</p>', str(old))]
    return format_html_join("", "{}", ((part,) for part in parts))


def _refuse(model_admin, request, found, objs, reason):
    """List the objects ``reason`` refuses as protected on the delete confirmation page.

    Django counts an object whose ``has_delete_permission`` is False as a missing permission
    ("your account doesn't have permission"); the page says why instead.
    """
    deleted, counts, perms_needed, protected = found
    reasons = [f"{obj} ({why})" for obj in objs if (why := reason(obj))]
    if reasons:
        if admin.ModelAdmin.has_delete_permission(model_admin, request):
            perms_needed.discard(model_admin.opts.verbose_name)
        protected = [*protected, *reasons]
    return deleted, counts, perms_needed, protected


def _become(obj: PromptVersion, saved: PromptVersion) -> None:
    """Turn the admin's in-memory ``obj`` into ``saved`` (so logging and redirects follow it)."""
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "version",
        "model",
        "temperature",
        "max_tokens",
        "is_live",
        "served",
        "author",
        "created_at",
    )
    list_filter = ("name", "is_live")
    search_fields = ("name", "system_prompt")
    list_select_related = ("author",)
    exclude = ("version", "is_live", "first_served_at")
    actions = ["make_live"]

    class Media:
        css = {"all": (STYLESHEET,)}

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": ("name", *PROMPT_FIELDS)}),)
        if obj.has_served:
            note = (
                f"v{obj.version} has served calls, so it is never edited in place: saving this "
                "form makes the next version with your changes, and this one stays as it is."
            )
        else:
            note = "This version has not served a call yet: saving edits it in place."
        return (
            (None, {"fields": ("name", *PROMPT_FIELDS), "description": note}),
            (
                "Status",
                {"fields": ("version", "is_live", "first_served_at", "author", "created_at")},
            ),
            ("Changes from the previous version", {"fields": ("changes",)}),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("name", "version", "is_live", "first_served_at", "author", "created_at", "changes")

    @admin.display(boolean=True, description="served", ordering="first_served_at")
    def served(self, obj):
        return obj.first_served_at is not None

    @admin.display(description="Diff")
    def changes(self, obj):
        previous = previous_version(obj)
        if previous is None:
            return "This is the prompt's first version."
        return render_diff(previous, obj)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in PROMPT_FIELDS}
        if not change:
            _become(obj, services.new_prompt_version(name=obj.name, author=request.user, **fields))
            return
        if not form.has_changed():
            return
        # Conditional, so a version that served a call since the form was read is never touched.
        if PromptVersion.objects.filter(pk=obj.pk, first_served_at__isnull=True).update(**fields):
            SERVING.changed()
            return
        old = obj.version
        _become(obj, services.new_prompt_version(name=obj.name, author=request.user, **fields))
        obj._edited_from_version = old
        self.message_user(
            request,
            f"v{old} has served calls, so your edit was saved as v{obj.version}.",
            messages.WARNING,
        )

    def log_change(self, request, obj, message):
        old = getattr(obj, "_edited_from_version", None)
        if old is None:
            return super().log_change(request, obj, message)
        # The edit made this version: its history starts with where it came from.
        return self.log_addition(
            request, obj, f"Added as an edit of v{old}, which has served calls."
        )

    def has_delete_permission(self, request, obj=None):
        if obj is not None and protected_reason(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        """Refuse "delete selected" when a chosen version served or an experiment uses it."""
        return _refuse(
            self, request, super().get_deleted_objects(objs, request), objs, protected_reason
        )

    @admin.action(
        description="Make live",
        permissions=["change"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def make_live(self, request, queryset):
        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, "Select exactly one version to make live.", messages.ERROR)
            return
        version = versions[0]
        if version.is_live:
            self.message_user(request, f"{version} is already live.", messages.INFO)
            return
        previous = PromptVersion.objects.filter(name=version.name, is_live=True).first()
        services.make_live(version)
        self.log_change(request, version, "Made live.")
        if previous is not None:
            self.log_change(request, previous, f"No longer live: v{version.version} was made live.")
        self.message_user(request, f"{version} is now the live version of {version.name}.")


# --- Experiments --------------------------------------------------------------------------------


class VariantForm(forms.ModelForm):
    def validate_constraints(self):
        """Leave "one control" to the formset, which sees every row of the submission: checked
        row by row against the database, moving the control from one variant to another would be
        refused. (The current control is listed, so saved, first: the database never sees two.)"""
        exclude = self._get_validation_exclusions() | {"is_control"}
        try:
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as e:
            self._update_errors(e)


class VariantInlineFormSet(forms.BaseInlineFormSet):
    """At most one control (the database refuses two), and versions of the experiment's prompt."""

    def clean(self):
        super().clean()
        if any(self.errors) or self.instance.status != Experiment.Status.DRAFT:
            return  # a started experiment's variants are view-only (their data is not posted)
        prompt = self.instance.prompt_name
        controls = 0
        for form in self.forms:
            if self._should_delete_form(form) or not form.cleaned_data:
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


LIFECYCLE_ACTIONS = ("start", "pause", "resume", "traffic", "complete", "rollback")


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
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

        return _refuse(self, request, super().get_deleted_objects(objs, request), objs, reason)

    @admin.display(description="comparison")
    def comparison(self, obj):
        return format_html('<a href="{}">Compare</a>', self._url("compare", obj))

    def _url(self, name: str, obj) -> str:
        info = self.opts.app_label, self.opts.model_name
        return reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[obj.pk])

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

    def lifecycle_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        if experiment is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        try:
            message = getattr(self, f"_{action}")(request, experiment)
        except services.ExperimentError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.log_change(request, experiment, message)
            self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(self._url("change", experiment))

    # Each button calls one service and returns what the admin history records.

    def _start(self, request, experiment) -> str:
        services.start_experiment(experiment)
        return f"Started, with {experiment.traffic_percent}% of users enrolled."

    def _pause(self, request, experiment) -> str:
        services.pause_experiment(experiment)
        return "Paused: everyone gets the live version; assignments are kept."

    def _resume(self, request, experiment) -> str:
        services.resume_experiment(experiment)
        return "Resumed: everyone enrolled gets their variant again."

    def _traffic(self, request, experiment) -> str:
        raw = request.POST.get("traffic_percent", "").strip()
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            shown = raw if len(raw) <= 20 else f"{raw[:20]}…"
            raise services.ExperimentError(f"Traffic must be a number, not “{shown}”.")
        if Decimal(0) <= value <= Decimal(100):
            value = value.quantize(Decimal("0.01"))  # the column's precision
        before = experiment.traffic_percent
        services.set_traffic(experiment, value)
        return f"Changed traffic from {before}% to {experiment.traffic_percent}%."

    def _complete(self, request, experiment) -> str:
        key = request.POST.get("promote", "").strip()
        if not key:
            raise services.ExperimentError("Choose the variant to promote.")
        # Promoting makes a prompt version live, which is a change to prompt versions.
        if not request.user.has_perm("experiments.change_promptversion"):
            raise PermissionDenied
        services.complete_experiment(experiment, promote=key)
        version = experiment.variants.select_related("prompt_version").get(key=key).prompt_version
        self.log_change(request, version, f"Made live by completing experiment {experiment.key}.")
        return f"Completed; promoted {key}: {version} is now live."

    def _rollback(self, request, experiment) -> str:
        services.complete_experiment(experiment, promote=None)
        return "Rolled back: completed without promoting; the live version is unchanged."

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            is_draft = obj.status == Experiment.Status.DRAFT
            can_act = self.has_change_permission(request, obj)
            context.update(
                {
                    "compare_url": self._url("compare", obj),
                    "lifecycle_urls": {a: self._url(a, obj) for a in LIFECYCLE_ACTIONS},
                    "can_act": can_act,
                    "can_promote": can_act
                    and request.user.has_perm("experiments.change_promptversion"),
                    "lifecycle_variants": list(obj.variants.select_related("prompt_version")),
                }
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
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        comparison = compare(experiment)
        version_ids = {v.key: v.prompt_version_id for v in experiment.variants.all()}
        context = {
            **self.admin_site.each_context(request),
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
            "eval_run": experiment.eval_runs.filter(finished_at__isnull=False).first(),
        }
        if context["eval_run"] is not None:
            run = context["eval_run"]
            context["eval_rows"] = [
                {"key": key, **line} for key, line in sorted(run.summary.items())
            ]
            context["eval_unjudged"] = run.results.exclude(error="").count()
            context["eval_total"] = run.results.count()
        return TemplateResponse(request, "admin/experiments/experiment/compare.html", context)


# --- Formatting the comparison ------------------------------------------------------------------

# How each metric of ``selectors.compare`` reads: its unit, and which way is better.
METRICS = {
    "satisfaction": ("rate", "higher", "rated"),
    "error rate": ("rate", "lower", "calls"),
    "latency (ms)": ("ms", "lower", "latency"),
    "time to first token (ms)": ("ms", "lower", "ttft"),
    "output tokens per reply": ("number", None, "output_tokens"),
    "cost per call (USD)": ("usd", "lower", "cost"),
}


def format_usd(value, *, signed: bool = False) -> str:
    """Dollars, with enough digits for a per-call cost: $0.000123, $0.0456, $12.30."""
    if value is None:
        return "—"
    value = float(value)
    sign = ("+" if value > 0 else "-" if value < 0 else "") if signed else "-" * (value < 0)
    amount = abs(value)
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    digits = max(4, 2 - math.floor(math.log10(amount)))
    return f"{sign}${amount:.{digits}f}"


def format_value(kind: str, value) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return format_percent(value)
    if kind == "ms":
        return format_ms(value)
    if kind == "usd":
        return format_usd(value)
    return f"{float(value):,.1f}"


def format_diff(kind: str, value) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:+.1f} pts"
    if kind == "ms":
        return f"{value:+,.0f} ms"
    if kind == "usd":
        return format_usd(value, signed=True)
    return f"{value:+,.1f}"


def format_relative(value) -> str:
    return "—" if value is None else f"{value:+.1%}"


def format_p(value) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _interval(interval) -> str:
    if interval is None:
        return ""
    low, high = interval
    return f"{low * 100:.1f}\N{EN DASH}{high * 100:.1f}%"


def variant_row(v, version_id: int | None) -> dict:
    return {
        "key": v.key,
        "is_control": v.is_control,
        "weight": v.weight,
        "model": v.model,
        "prompt_version": v.prompt_version,
        "prompt_version_url": (
            reverse("admin:experiments_promptversion_change", args=[version_id])
            if version_id
            else ""
        ),
        "users": format_count(v.users),
        "conversations": format_count(v.conversations),
        "calls": format_count(v.calls),
        "satisfaction": format_percent(v.satisfaction),
        "satisfaction_interval": _interval(v.satisfaction_interval),
        "rated": format_count(v.rated),
        "rating_rate": format_percent(v.rating_rate),
        "error_rate": format_percent(v.error_rate),
        "avg_latency": format_ms(v.latency.mean),
        "p95_latency": format_ms(v.p95_latency_ms),
        "avg_ttft": format_ms(v.ttft.mean),
        "output_tokens": format_value("number", v.output_tokens.mean),
        "cost_per_call": format_usd(v.cost.mean),
        "cost_per_user": format_usd(v.cost_per_user),
        "cost": format_usd(v.cost_usd),
    }


def _sample_size(v, source: str) -> int:
    value = getattr(v, source)
    return value if isinstance(value, int) else value.n


def difference_tables(comparison) -> list[dict]:
    by_key = {v.key: v for v in comparison.variants}
    control = next((v for v in comparison.variants if v.is_control), None)
    tables = []
    for key, differences in comparison.differences.items():
        rows = []
        for d in differences:
            kind, better, source = METRICS.get(d.metric, ("number", None, None))
            row = {
                "metric": d.metric,
                "control": format_value(kind, d.control),
                "treatment": format_value(kind, d.treatment),
                "diff": format_diff(kind, d.diff),
                "relative": format_relative(d.relative),
                "p_value": format_p(d.p_value),
                "enough_data": d.enough_data,
                "significant": d.significant,
                "direction": "",
            }
            if not d.enough_data:
                note = f"not enough data (needs {comparison.min_sample} per group"
                if source and control is not None:
                    has = min(_sample_size(control, source), _sample_size(by_key[key], source))
                    note += f", has {has}"
                row["note"] = note + ")"
            elif d.significant and better and d.diff:
                improved = (d.diff > 0) == (better == "higher")
                row["direction"] = "better" if improved else "worse"
            rows.append(row)
        tables.append({"key": key, "control": control.key if control else "", "rows": rows})
    return tables


def srm_summary(comparison) -> dict | None:
    srm = comparison.srm
    if srm is None:
        return None
    p_value = format_p(srm.p_value)
    total = sum(v.users for v in comparison.variants)
    weights = sum(v.weight for v in comparison.variants)
    return {
        "mismatch": srm.mismatch,
        "chi2": f"{srm.chi2:.2f}",
        "df": srm.df,
        "p": f"p {p_value}" if p_value.startswith("<") else f"p = {p_value}",
        "groups": [
            {
                "key": v.key,
                "observed": format_count(v.users),
                "expected": format_count(total * v.weight / weights),
                "share": format_percent(v.users / total),
                "expected_share": format_percent(v.weight / weights),
            }
            for v in comparison.variants
        ],
    }


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    fields = ["index", "prompt", "scores", "judge_reason", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    """Runs of ``manage.py eval_prompts`` (read-only: they are made by the command)."""

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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
