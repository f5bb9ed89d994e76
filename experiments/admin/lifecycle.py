"""The experiment's life-cycle buttons (start, pause, resume, traffic, promote, roll back): one
POST-only URL each under ``<id>/``, one service each, permission-checked and logged in the admin
history. The change page and the comparison page both carry them (``_lifecycle_actions.html``)."""

from decimal import Decimal, InvalidOperation

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse

from .. import selectors, services

LIFECYCLE_ACTIONS = ("start", "pause", "resume", "traffic", "complete", "rollback")
# The pages a button may send the user back to (a fixed set: never a URL from the request).
RETURN_PAGES = ("change", "compare")


class LifecycleMixin(admin.ModelAdmin):
    """For ExperimentAdmin: the buttons' view and the context their template needs."""

    def _url(self, name: str, obj) -> str:
        info = self.opts.app_label, self.opts.model_name
        return reverse(f"admin:{info[0]}_{info[1]}_{name}", args=[obj.pk])

    def lifecycle_context(self, request, experiment) -> dict:
        can_act = self.has_change_permission(request, experiment)
        return {
            "lifecycle_urls": {a: self._url(a, experiment) for a in LIFECYCLE_ACTIONS},
            "can_act": can_act,
            "can_promote": can_act and request.user.has_perm("experiments.change_promptversion"),
            "lifecycle_variants": selectors.experiment_variants(experiment),
        }

    def lifecycle_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        if experiment is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        try:
            message = getattr(self, f"_{action}")(request, experiment)
        except services.ExperimentError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.log_change(request, experiment, message)
            self.message_user(request, message, messages.SUCCESS)
        page = request.POST.get("return_to", "change")
        return HttpResponseRedirect(
            self._url(page if page in RETURN_PAGES else "change", experiment)
        )

    # Each button calls one service and returns what the admin history records.

    def _start(self, request, experiment) -> str:
        services.start_experiment(experiment=experiment)
        return f"Started, with {experiment.traffic_percent}% of users enrolled."

    def _pause(self, request, experiment) -> str:
        services.pause_experiment(experiment=experiment)
        return "Paused: everyone gets the live version; assignments are kept."

    def _resume(self, request, experiment) -> str:
        services.resume_experiment(experiment=experiment)
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
        services.set_traffic(experiment=experiment, percent=value)
        return f"Changed traffic from {before}% to {experiment.traffic_percent}%."

    def _complete(self, request, experiment) -> str:
        key = request.POST.get("promote", "").strip()
        if not key:
            raise services.ExperimentError("Choose the variant to promote.")
        # Promoting makes a prompt version live, which is a change to prompt versions.
        if not request.user.has_perm("experiments.change_promptversion"):
            raise PermissionDenied
        services.complete_experiment(experiment=experiment, promote=key)
        version = selectors.variant_version(experiment, key)
        self.log_change(request, version, f"Made live by completing experiment {experiment.key}.")
        return f"Completed; promoted {key}: {version} is now live."

    def _rollback(self, request, experiment) -> str:
        services.complete_experiment(experiment=experiment, promote=None)
        return "Rolled back: completed without promoting; the live version is unchanged."
