"""What the prompt and experiment admins share: their stylesheet and protected deletions."""

from django.contrib import admin

STYLESHEET = "experiments/experiments.css"


def refuse_protected(model_admin, request, found, objs, reason):
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
