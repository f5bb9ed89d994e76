"""Prompt versions: never edited in place once served (an edit makes the next version); the
change page shows the diff from the previous version, escaped."""

import difflib

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.utils.html import format_html, format_html_join

from .. import selectors, services
from ..models import PromptVersion
from .protection import STYLESHEET, refuse_protected

# What an edit may change; the name is fixed once a version exists (it identifies the prompt).
PROMPT_FIELDS = ("system_prompt", "model", "temperature", "max_tokens", "notes")
# Parameters the diff shows next to the system prompt's lines.
DIFF_PARAMETERS = ("model", "temperature", "max_tokens")


def protected_reason(version: PromptVersion) -> str:
    """Why ``version`` may not be deleted ("" when it may)."""
    if version.first_served_at is not None:
        return "it has served calls"
    keys = selectors.experiments_using(version)
    return f"experiment {', '.join(keys)} uses it" if keys else ""


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
        previous = selectors.previous_version(obj)
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
        if services.edit_unserved_version(version=obj, fields=fields):
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
        return refuse_protected(
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
        previous = selectors.live_version(version.name)
        services.make_live(version=version)
        self.log_change(request, version, "Made live.")
        if previous is not None:
            self.log_change(request, previous, f"No longer live: v{version.version} was made live.")
        self.message_user(request, f"{version} is now the live version of {version.name}.")
