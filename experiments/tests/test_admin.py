"""The experiments admin: immutable prompt versions, the life-cycle buttons, the comparison page.

Pages are read through their ``data-*`` hooks; numbers are checked against values computed by
hand from the seeded rows (or straight from the rows), not against the page's own formatting.
"""

import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics.models import AICall
from analytics.rollups import rollup_range
from analytics.tests.factories import make_call, make_price
from chat.models import Conversation, Message
from experiments import services, stats
from experiments.models import Experiment, Exposure, Feedback, PromptVersion, Variant
from experiments.tests.factories import make_canary

pytestmark = pytest.mark.django_db

PROMPT = "chat-system"


# --- Helpers ---------------------------------------------------------------------------------


class Hooks(HTMLParser):
    """Collects text by hooks: ``cells[table][metric][col]`` for the ``data-metric`` rows of a
    ``data-table`` (in the variants table the columns are the variants), ``values[name]`` for
    ``data-value``, and ``srm`` for the sample-ratio box's ``data-srm``."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}

    def __init__(self, html: str):
        super().__init__()
        self.cells: dict[str, dict[str, dict[str, str]]] = {}
        self.values: dict[str, str] = {}
        self.srm: str | None = None
        self._stack: list[tuple[str, dict]] = []
        self.feed(html)

    def _find(self, attr):
        for _, attrs in reversed(self._stack):
            if attr in attrs:
                return attrs[attr]
        return None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-srm" in attrs:
            self.srm = attrs["data-srm"]
        if tag not in self.VOID:
            self._stack.append((tag, attrs))

    def handle_endtag(self, tag):
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        value = self._find("data-value")
        if value:
            self.values[value] = self.values.get(value, "") + data
        table, col = self._find("data-table"), self._find("data-col")
        row = self._find("data-metric")
        if table and row and col:
            cell = self.cells.setdefault(table, {}).setdefault(row, {})
            cell[col] = (cell.get(col, "") + data).strip()


def assert_csp_clean(html: str) -> None:
    """The site's CSP forbids inline scripts, style attributes and inline event handlers."""
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"<style\b", html)
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def version(n_text="You are helpful.", *, model="m-1", served=False, **extra) -> PromptVersion:
    made = services.new_prompt_version(
        name=extra.pop("name", PROMPT),
        system_prompt=n_text,
        model=model,
        temperature=extra.pop("temperature", Decimal("0.70")),
        max_tokens=extra.pop("max_tokens", 1000),
        **extra,
    )
    if served:
        PromptVersion.objects.filter(pk=made.pk).update(first_served_at=timezone.now())
        made.refresh_from_db()
    return made


def form_data(v: PromptVersion, **changes) -> dict:
    data = {
        "system_prompt": v.system_prompt,
        "model": v.model,
        "temperature": str(v.temperature),
        "max_tokens": str(v.max_tokens),
        "notes": v.notes,
        "_save": "Save",
    }
    data.update(changes)
    return data


def change_url(obj) -> str:
    return reverse(f"admin:experiments_{obj._meta.model_name}_change", args=[obj.pk])


def action_url(experiment, action: str) -> str:
    return reverse(f"admin:experiments_experiment_{action}", args=[experiment.pk])


def compare_url(experiment) -> str:
    return reverse("admin:experiments_experiment_compare", args=[experiment.pk])


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "x-pass-123456")


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def experiment():
    v1 = version("You are helpful.", model="m-control")
    v2 = version("You are helpful and brief.", model="m-treat")
    services.make_live(version=v1)
    return make_canary(control=v1, treatment=v2, prompt_name=PROMPT, min_sample=10).experiment


def log_messages(obj, flag=CHANGE) -> list[str]:
    ct = ContentType.objects.get_for_model(obj)
    return list(
        LogEntry.objects.filter(
            content_type=ct, object_id=str(obj.pk), action_flag=flag
        ).values_list("change_message", flat=True)
    )


# --- Prompt versions -------------------------------------------------------------------------


def test_adding_a_version_numbers_it_and_records_the_author(admin_client, superuser):
    version("first")
    data = form_data(version("second"), system_prompt="third")
    data["name"] = PROMPT
    response = admin_client.post(reverse("admin:experiments_promptversion_add"), data)
    assert response.status_code == 302
    added = PromptVersion.objects.get(name=PROMPT, version=3)
    assert (added.system_prompt, added.author, added.is_live) == ("third", superuser, False)
    assert log_messages(added, ADDITION)


def test_editing_a_served_version_makes_a_new_version(admin_client, superuser):
    old = version("Line one.\nLine two.", served=True)
    before = PromptVersion.objects.values().get(pk=old.pk)
    data = form_data(old, system_prompt="Line one.\nLine 2.", model="m-2")
    response = admin_client.post(change_url(old), data, follow=True)
    assert response.status_code == 200
    assert "v1 has served calls, so your edit was saved as v2." in messages_of(response)

    assert PromptVersion.objects.values().get(pk=old.pk) == before  # not a byte changed
    new = PromptVersion.objects.get(name=PROMPT, version=2)
    assert (new.system_prompt, new.model, new.author) == ("Line one.\nLine 2.", "m-2", superuser)
    assert new.first_served_at is None and not new.is_live
    assert log_messages(new, ADDITION) == ["Added as an edit of v1, which has served calls."]
    assert log_messages(old) == []


def test_saving_a_served_version_unchanged_makes_no_new_version(admin_client):
    old = version("Same.", served=True)
    admin_client.post(change_url(old), form_data(old))
    assert PromptVersion.objects.count() == 1


def test_editing_an_unserved_version_edits_it_in_place(admin_client):
    draft = version("Draft text.")
    response = admin_client.post(change_url(draft), form_data(draft, system_prompt="Better text."))
    assert response.status_code == 302
    assert PromptVersion.objects.count() == 1
    draft.refresh_from_db()
    assert (draft.version, draft.system_prompt) == (1, "Better text.")


def test_a_version_served_while_its_form_was_open_is_not_overwritten(admin_client, monkeypatch):
    """The in-place update is conditional: serving wins over an edit that started before it."""
    draft = version("Draft text.")
    real_update = PromptVersion.objects.filter

    def served_meanwhile(*args, **kwargs):
        PromptVersion.objects.all().update(first_served_at=timezone.now())
        return real_update(*args, **kwargs)

    monkeypatch.setattr(PromptVersion.objects, "filter", served_meanwhile)
    admin_client.post(change_url(draft), form_data(draft, system_prompt="Late edit."))
    monkeypatch.undo()
    draft.refresh_from_db()
    assert draft.system_prompt == "Draft text."
    assert PromptVersion.objects.get(version=2).system_prompt == "Late edit."


def test_the_change_page_shows_the_diff_with_the_previous_version(admin_client):
    version("-- dashes\nLine one.\nLine two.\nLine three.", model="m-1", max_tokens=1000)
    version("Something else entirely.", name="other-prompt")
    new = version(
        "Line one.\nLine 2.\nLine three.\n<script>alert('x')</script>\n++ plus",
        model="m-2",
        max_tokens=1000,
    )
    html = admin_client.get(change_url(new)).content.decode()
    assert '<pre class="prompt-diff" data-diff="system_prompt">' in html
    assert '<span class="diff-removed">-Line two.</span>' in html
    assert '<span class="diff-added">+Line 2.</span>' in html
    assert '<span class="diff-context"> Line one.</span>' in html
    assert '<span class="diff-removed">--- dashes</span>' in html  # a line, not a file header
    assert '<span class="diff-added">+++ plus</span>' in html
    assert '<span class="diff-file">--- chat-system v1 system prompt</span>' in html
    assert (
        '<span class="diff-added">+&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;</span>' in html
    )
    assert "<script>alert" not in html
    # Changed parameters are in the diff; unchanged ones are not.
    assert '<span class="diff-removed">-model: m-1</span>' in html
    assert '<span class="diff-added">+model: m-2</span>' in html
    assert "max_tokens:" not in html
    assert "Something else" not in html  # another prompt's versions are not "previous"
    assert_csp_clean(html)

    first = PromptVersion.objects.get(name=PROMPT, version=1)
    assert "first version" in admin_client.get(change_url(first)).content.decode()


def test_the_add_form_has_no_version_live_or_served_fields(admin_client):
    html = admin_client.get(reverse("admin:experiments_promptversion_add")).content.decode()
    assert 'name="system_prompt"' in html
    for field in ("version", "is_live", "first_served_at", "author"):
        assert f'name="{field}"' not in html


def test_make_live_action_leaves_exactly_one_live_version(admin_client):
    v1, v2, v3 = version("a"), version("b"), version("c")
    services.make_live(version=v1)
    response = admin_client.post(
        reverse("admin:experiments_promptversion_changelist"),
        {"action": "make_live", "_selected_action": [v2.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert list(PromptVersion.objects.filter(is_live=True)) == [v2]
    assert log_messages(v2) == ["Made live."]
    assert log_messages(v1) == ["No longer live: v2 was made live."]

    response = admin_client.post(
        reverse("admin:experiments_promptversion_changelist"),
        {"action": "make_live", "_selected_action": [v1.pk, v3.pk]},
        follow=True,
    )
    assert "Select exactly one version to make live." in messages_of(response)
    assert list(PromptVersion.objects.filter(is_live=True)) == [v2]


def test_make_live_from_the_version_page(admin_client):
    v1, v2 = version("a"), version("b")
    services.make_live(version=v1)
    response = admin_client.post(
        change_url(v2),
        {"CHANGE_FORM-action": "make_live", "_selected_action": [v2.pk]},
        follow=True,
    )
    assert "chat-system v2 is now the live version of chat-system." in messages_of(response)
    assert list(PromptVersion.objects.filter(is_live=True)) == [v2]


def test_versions_that_served_or_that_a_variant_uses_cannot_be_deleted(admin_client, experiment):
    served = version("served", served=True)
    used = Variant.objects.get(key="experiment").prompt_version
    spare = version("spare")
    delete = "admin:experiments_promptversion_delete"
    for protected in (served, used):
        assert admin_client.get(reverse(delete, args=[protected.pk])).status_code == 403
        assert (
            admin_client.post(reverse(delete, args=[protected.pk]), {"post": "yes"}).status_code
            == 403
        )
    response = admin_client.post(
        reverse("admin:experiments_promptversion_changelist"),
        {"action": "delete_selected", "_selected_action": [served.pk, spare.pk], "post": "yes"},
    )
    assert "it has served calls" in response.content.decode()
    assert PromptVersion.objects.filter(pk__in=[served.pk, spare.pk]).count() == 2

    assert admin_client.post(reverse(delete, args=[spare.pk]), {"post": "yes"}).status_code == 302
    assert not PromptVersion.objects.filter(pk=spare.pk).exists()


# --- Experiment life cycle -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action", "data", "expected_status", "message"),
    [
        ("draft", "start", {}, "running", "Started, with 10.00% of users enrolled."),
        ("running", "pause", {}, "paused", "Paused"),
        ("paused", "resume", {}, "running", "Resumed"),
        ("running", "traffic", {"traffic_percent": "25"}, "running", "from 10.00% to 25.00%"),
        ("running", "rollback", {}, "completed", "Rolled back"),
        ("paused", "complete", {"promote": "experiment"}, "completed", "promoted experiment"),
    ],
)
def test_each_button_runs_its_service_and_is_logged(
    admin_client, superuser, experiment, status, action, data, expected_status, message
):
    Experiment.objects.filter(pk=experiment.pk).update(status=status)
    response = admin_client.post(action_url(experiment, action), data, follow=True)
    assert response.redirect_chain[-1][0] == change_url(experiment)
    experiment.refresh_from_db()
    assert experiment.status == expected_status
    assert any(message in m for m in messages_of(response))
    entry = LogEntry.objects.get(object_id=str(experiment.pk), action_flag=CHANGE)
    assert entry.user == superuser and message in entry.change_message
    history = admin_client.get(
        reverse("admin:experiments_experiment_history", args=[experiment.pk])
    )
    assert message in history.content.decode()


def test_start_sets_the_start_time_and_traffic_the_percentage(admin_client, experiment):
    admin_client.post(action_url(experiment, "start"))
    admin_client.post(action_url(experiment, "traffic"), {"traffic_percent": "12.5"})
    experiment.refresh_from_db()
    assert experiment.started_at is not None and experiment.ended_at is None
    assert experiment.traffic_percent == Decimal("12.50")


def test_promoting_makes_the_variants_version_live_and_rollback_keeps_the_live_one(
    admin_client, experiment, django_user_model
):
    control = Variant.objects.get(key="control").prompt_version
    treatment = Variant.objects.get(key="experiment").prompt_version
    other = Experiment.objects.create(key="other", prompt_name=PROMPT, status="running")

    admin_client.post(action_url(other, "rollback"))
    assert list(PromptVersion.objects.filter(is_live=True)) == [control]

    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    admin_client.post(action_url(experiment, "complete"), {"promote": "experiment"})
    experiment.refresh_from_db()
    assert experiment.status == "completed" and experiment.ended_at is not None
    assert list(PromptVersion.objects.filter(is_live=True)) == [treatment]
    assert log_messages(treatment) == ["Made live by completing experiment canary."]


@pytest.mark.parametrize(
    ("status", "action", "data", "error"),
    [
        ("running", "resume", {}, "Experiment canary is running; this needs it paused."),
        ("paused", "pause", {}, "Experiment canary is paused; this needs it running."),
        ("running", "start", {}, "Experiment canary is running; this needs it draft."),
        ("running", "traffic", {"traffic_percent": "150"}, "Traffic must be between 0 and 100"),
        ("running", "traffic", {"traffic_percent": "-1"}, "Traffic must be between 0 and 100"),
        ("running", "traffic", {"traffic_percent": "lots"}, "Traffic must be a number"),
        ("running", "traffic", {"traffic_percent": "NaN"}, "Traffic must be a number"),
        ("running", "traffic", {}, "Traffic must be a number"),
        ("running", "complete", {"promote": "nope"}, "No variant 'nope' in canary."),
        ("running", "complete", {}, "Choose the variant to promote."),
        ("completed", "rollback", {}, "The experiment is already completed."),
        ("completed", "complete", {"promote": "control"}, "already completed"),
    ],
)
def test_refused_actions_show_the_error_and_change_nothing(
    admin_client, experiment, status, action, data, error
):
    Experiment.objects.filter(pk=experiment.pk).update(status=status)
    before = Experiment.objects.values().get(pk=experiment.pk)
    live_before = list(PromptVersion.objects.filter(is_live=True))
    response = admin_client.post(action_url(experiment, action), data, follow=True)
    assert response.status_code == 200
    assert any(error in m for m in messages_of(response)), messages_of(response)
    assert error.split("'")[0] in response.content.decode().replace("&#x27;", "'")
    assert Experiment.objects.values().get(pk=experiment.pk) == before
    assert list(PromptVersion.objects.filter(is_live=True)) == live_before
    assert not LogEntry.objects.exists()


def test_start_needs_a_control_and_a_treatment(admin_client):
    lonely = Experiment.objects.create(key="lonely", prompt_name=PROMPT)
    response = admin_client.post(action_url(lonely, "start"), follow=True)
    assert "An experiment needs one control and at least one treatment." in messages_of(response)
    lonely.refresh_from_db()
    assert lonely.status == "draft"


def test_a_second_running_experiment_on_the_prompt_is_refused(admin_client, experiment):
    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    second = Experiment.objects.create(key="second", prompt_name=PROMPT)
    for key, is_control in (("a", True), ("b", False)):
        Variant.objects.create(
            experiment=second,
            key=key,
            prompt_version=PromptVersion.objects.first(),
            is_control=is_control,
        )
    response = admin_client.post(action_url(second, "start"), follow=True)
    assert "Another experiment on prompt 'chat-system' is running." in messages_of(response)
    second.refresh_from_db()
    assert second.status == "draft"


def test_actions_accept_post_only_and_need_the_csrf_token(superuser, experiment):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    assert client.get(action_url(experiment, "start")).status_code == 405
    assert client.post(action_url(experiment, "start")).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"

    page = client.get(change_url(experiment)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(action_url(experiment, "start"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == "running"


def test_the_change_page_shows_the_buttons_for_the_status(admin_client, experiment):
    html = admin_client.get(change_url(experiment)).content.decode()
    assert f'action="{action_url(experiment, "start")}"' in html
    assert 'data-action="pause"' not in html
    assert 'data-action="promote-control"' in html and 'data-action="promote-experiment"' in html
    assert f'href="{compare_url(experiment)}"' in html
    assert 'name="salt"' in html and 'name="_save"' in html
    assert_csp_clean(html)

    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    html = admin_client.get(change_url(experiment)).content.decode()
    assert 'data-action="pause"' in html and 'data-action="start"' not in html
    assert 'name="traffic_percent"' in html  # the traffic button's form, not the change form
    assert 'name="salt"' not in html and 'name="_save"' not in html
    assert 'name="variants-0-weight"' not in html
    assert_csp_clean(html)

    Experiment.objects.filter(pk=experiment.pk).update(status="completed")
    html = admin_client.get(change_url(experiment)).content.decode()
    assert "data-action=" not in html


def test_a_started_experiment_cannot_be_edited_through_the_form(admin_client, experiment):
    Experiment.objects.filter(pk=experiment.pk).update(status="running")
    experiment.refresh_from_db()
    salt = experiment.salt
    control = Variant.objects.get(key="control")
    data = {
        "key": "renamed",
        "salt": "changed",
        "status": "completed",
        "traffic_percent": "90",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "2",
        "variants-0-id": control.pk,
        "variants-0-experiment": experiment.pk,
        "variants-0-key": "control",
        "variants-0-weight": "99",
        "variants-0-DELETE": "on",
        "_save": "Save",
    }
    admin_client.post(change_url(experiment), data)
    experiment.refresh_from_db()
    assert (experiment.key, experiment.salt, experiment.status) == ("canary", salt, "running")
    assert experiment.traffic_percent == Decimal("10.00")
    control.refresh_from_db()
    assert control.weight == 50
    delete = reverse("admin:experiments_experiment_delete", args=[experiment.pk])
    assert admin_client.get(delete).status_code == 403


def test_a_draft_is_edited_in_the_form_and_two_controls_are_refused(admin_client, experiment):
    v1, v2 = (v.prompt_version for v in experiment.variants.all())
    other = version("other prompt", name="other-prompt")
    base = {
        "key": "canary",
        "description": "edited",
        "prompt_name": PROMPT,
        "traffic_percent": "20",
        "salt": experiment.salt,
        "min_sample": "10",
        "guardrail_error_rate_margin": "0.05",
        "guardrail_cost_margin": "0.5",
        "guardrail_min_calls": "100",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "2",
        "_save": "Save",
    }
    for i, variant in enumerate(experiment.variants.all()):
        base |= {
            f"variants-{i}-id": variant.pk,
            f"variants-{i}-experiment": experiment.pk,
            f"variants-{i}-key": variant.key,
            f"variants-{i}-prompt_version": variant.prompt_version_id,
            f"variants-{i}-weight": "50",
        }
    base["variants-0-is_control"] = "on"

    response = admin_client.post(change_url(experiment), base | {"variants-1-is_control": "on"})
    assert response.status_code == 200
    assert "An experiment has one control variant, not several." in response.content.decode()
    response = admin_client.post(
        change_url(experiment), base | {"variants-1-prompt_version": other.pk}
    )
    assert response.status_code == 200
    assert "is a version of other-prompt, not of chat-system" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.description == ""

    assert admin_client.post(change_url(experiment), base).status_code == 302
    experiment.refresh_from_db()
    assert (experiment.description, experiment.traffic_percent) == ("edited", Decimal("20.00"))
    assert experiment.status == "draft"

    # Moving the control from one variant to the other in one submission is allowed.
    swapped = base | {"variants-0-is_control": "", "variants-1-is_control": "on"}
    assert admin_client.post(change_url(experiment), swapped).status_code == 302
    assert experiment.variants.get(is_control=True).prompt_version == v2
    assert v1 != v2


def test_saving_a_draft_does_not_undo_a_start_pressed_meanwhile(
    admin_client, experiment, monkeypatch
):
    from django.contrib import admin as django_admin

    model_admin = django_admin.site.get_model_admin(Experiment)
    real_get_object = model_admin.get_object

    def started_meanwhile(*args, **kwargs):
        obj = real_get_object(*args, **kwargs)  # read as a draft ...
        Experiment.objects.filter(pk=experiment.pk).update(status="running")  # ... then started
        return obj

    monkeypatch.setattr(model_admin, "get_object", started_meanwhile)
    data = {
        "key": "canary",
        "description": "edited",
        "prompt_name": PROMPT,
        "traffic_percent": "10",
        "salt": experiment.salt,
        "min_sample": "10",
        "guardrail_error_rate_margin": "0.05",
        "guardrail_cost_margin": "0.5",
        "guardrail_min_calls": "100",
        "variants-TOTAL_FORMS": "0",
        "variants-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    assert admin_client.post(change_url(experiment), data).status_code == 302
    experiment.refresh_from_db()
    assert (experiment.status, experiment.description) == ("running", "edited")


def test_adding_an_experiment_with_its_variants(admin_client):
    v1, v2 = version("a"), version("b")
    data = {
        "key": "new-canary",
        "description": "",
        "prompt_name": PROMPT,
        "traffic_percent": "5",
        "salt": "s4lt",
        "min_sample": "100",
        "guardrail_error_rate_margin": "0.05",
        "guardrail_cost_margin": "0.5",
        "guardrail_min_calls": "100",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-0-key": "control",
        "variants-0-prompt_version": v1.pk,
        "variants-0-weight": "50",
        "variants-0-is_control": "on",
        "variants-1-key": "experiment",
        "variants-1-prompt_version": v2.pk,
        "variants-1-weight": "50",
        "variants-1-is_control": "on",
        "_save": "Save",
    }
    add = reverse("admin:experiments_experiment_add")
    response = admin_client.post(add, data)
    assert response.status_code == 200
    assert "An experiment has one control variant, not several." in response.content.decode()
    assert not Experiment.objects.exists()

    data["variants-1-is_control"] = ""
    assert admin_client.post(add, data).status_code == 302
    created = Experiment.objects.get(key="new-canary")
    assert (created.status, created.salt, created.traffic_percent) == ("draft", "s4lt", 5)
    assert [(v.key, v.is_control) for v in created.variants.all()] == [
        ("control", True),
        ("experiment", False),
    ]


def test_the_changelist_links_to_the_comparison(admin_client, experiment):
    html = admin_client.get(reverse("admin:experiments_experiment_changelist")).content.decode()
    assert f'href="{compare_url(experiment)}"' in html
    assert_csp_clean(html)


# --- The comparison page ---------------------------------------------------------------------


def seed_group(exp, django_user_model, key, *, users, errors, latency, ups, downs, model):
    """``users`` users with two chat calls each; the first ``errors`` calls fail; ok calls take
    ``latency`` ± 100 ms and 90/110 output tokens; the first ``ups`` ok replies are rated up and
    the next ``downs`` down."""
    label = f"{exp.key}/{key}"
    created = timezone.now() - timedelta(hours=1)
    ok_index = 0
    for u in range(users):
        user = django_user_model.objects.create_user(f"{key}-{u}")
        Exposure.objects.create(experiment=exp, user=user, variant=key)
        conversation = Conversation.objects.create(user=user)
        for c in range(2):
            i = u * 2 + c
            status = "error" if i < errors else "ok"
            question = Message.objects.create(conversation=conversation, role="user", content="q")
            reply = Message.objects.create(
                conversation=conversation,
                role="assistant",
                reply_to=question,
                content="a",
                status="completed" if status == "ok" else "failed",
                variant=label,
            )
            make_call(
                created_at=created,
                model=model,
                status=status,
                variant=label,
                user=user,
                conversation_id=conversation.pk,
                message_id=reply.pk,
                latency_ms=latency + (100 if i % 2 else -100),
                ttft_ms=200 + (20 if i % 2 else -20),
                output_tokens=110 if i % 2 else 90,
            )
            if status == "ok":
                if ok_index < ups + downs:
                    rating = 1 if ok_index < ups else -1
                    Feedback.objects.create(message=reply, user=user, rating=rating, variant=label)
                ok_index += 1


@pytest.fixture
def seeded(experiment, django_user_model):
    make_price(model="m-control", inp="1", out="2")
    make_price(model="m-treat", inp="3", out="6")
    # control: 20 calls, 2 failed, 10 rated (6 up); experiment: 20 calls, 6 failed, 10 rated (9 up)
    seed_group(
        experiment, django_user_model, "control",
        users=10, errors=2, latency=1000, ups=6, downs=4, model="m-control",
    )  # fmt: skip
    seed_group(
        experiment, django_user_model, "experiment",
        users=10, errors=6, latency=1500, ups=9, downs=1, model="m-treat",
    )  # fmt: skip
    rollup_range(timezone.now() - timedelta(days=1), timezone.now() + timedelta(minutes=1))
    return experiment


def test_the_comparison_page_shows_the_seeded_numbers(admin_client, seeded):
    response = admin_client.get(compare_url(seeded))
    assert response.status_code == 200
    html = response.content.decode()
    assert_csp_clean(html)
    hooks = Hooks(html)
    # Metrics are rows and variants columns: read them back per variant.
    by_metric = hooks.cells["variants"]
    control = {metric: row["control"] for metric, row in by_metric.items()}
    treatment = {metric: row["experiment"] for metric, row in by_metric.items()}

    assert (control["users"], control["conversations"], control["calls"]) == ("10", "10", "20")
    assert control["error_rate"] == "10.0%" and treatment["error_rate"] == "30.0%"
    assert control["satisfaction"] == "60.0%" and treatment["satisfaction"] == "90.0%"
    # Wilson, 6 of 10, z = 1.96: (0.6 + z²/20 ± z·sqrt(0.024 + z²/400)) / (1 + z²/10).
    assert control["satisfaction_interval"] == "31.3\N{EN DASH}83.2%"
    assert control["rated"] == "10"
    assert control["rating_rate"] == f"{10 / 18:.1%}" and treatment["rating_rate"] == "71.4%"
    assert control["avg_latency"] == "1,000 ms" and treatment["avg_latency"] == "1,500 ms"
    assert control["avg_ttft"] == "200 ms" and control["output_tokens"] == "100.0"
    assert control["p95_latency"].endswith("ms")
    assert control["model"] == "m-control" and control["prompt_version"] == "chat-system v1"
    assert treatment["prompt_version"] == "chat-system v2"
    # Cost per call and per user, from the rows: each call costs (100 + 2 * output tokens) micro-dollars.
    cost = AICall.objects.filter(variant="canary/control").aggregate(s=Sum("cost_usd"))["s"]
    assert control["cost_per_call"] == f"${cost / 20:.6f}"
    assert control["cost_per_user"] == f"${cost / 10:.6f}"

    assert hooks.values["status"].strip() == "Draft" and hooks.values["traffic"] == "10.00%"
    assert hooks.srm == "ok"

    diffs = hooks.cells["diff-experiment"]
    latency = diffs["latency (ms)"]
    assert (latency["control"], latency["treatment"]) == ("1,000 ms", "1,500 ms")
    assert (latency["diff"], latency["relative"]) == ("+500 ms", "+50.0%")
    assert latency["p_value"] == "< 0.001"
    assert latency["verdict"] == "significant (worse)"
    error = diffs["error rate"]
    expected = stats.two_proportion_z_test(2, 20, 6, 20)
    assert error["diff"] == "+20.0 pts" and error["relative"] == "+200.0%"
    assert error["p_value"] == f"{expected.p_value:.3f}" and expected.p_value > 0.05
    assert error["verdict"] == "not significant"
    satisfaction = diffs["satisfaction"]
    assert satisfaction["diff"] == "+30.0 pts" and "not enough" not in satisfaction["verdict"]
    assert "not enough data" not in html
    assert f'href="{change_url(seeded)}"' in html


def test_below_the_minimum_sample_the_page_gives_no_verdict(admin_client, seeded):
    Experiment.objects.filter(pk=seeded.pk).update(min_sample=100)
    hooks = Hooks(admin_client.get(compare_url(seeded)).content.decode())
    diffs = hooks.cells["diff-experiment"]
    assert diffs["satisfaction"]["verdict"] == "not enough data (needs 100 per group, has 10)"
    assert diffs["error rate"]["verdict"] == "not enough data (needs 100 per group, has 20)"
    assert diffs["latency (ms)"]["verdict"] == "not enough data (needs 100 per group, has 14)"
    assert all("p_value" not in row for row in diffs.values())
    assert all("significant" not in row["verdict"] for row in diffs.values())
    # The numbers are still shown.
    assert diffs["latency (ms)"]["diff"] == "+500 ms"


def test_a_sample_ratio_mismatch_is_flagged(admin_client, experiment, django_user_model):
    users = django_user_model.objects.bulk_create(
        django_user_model(username=f"u{i}") for i in range(450)
    )
    Exposure.objects.bulk_create(
        Exposure(experiment=experiment, user=u, variant="control" if i < 300 else "experiment")
        for i, u in enumerate(users)
    )
    html = admin_client.get(compare_url(experiment)).content.decode()
    hooks = Hooks(html)
    assert hooks.srm == "mismatch"
    assert "Sample ratio mismatch" in html
    assert hooks.values["srm_p"] == "p < 0.001"
    assert hooks.cells["variants"]["users"] == {"control": "300", "experiment": "150"}

    # A split that chance explains is not flagged.
    Exposure.objects.filter(user__in=users[225:300]).update(variant="experiment")  # 225 each
    hooks = Hooks(admin_client.get(compare_url(experiment)).content.decode())
    assert hooks.srm == "ok"


def test_the_comparison_of_an_experiment_without_data(admin_client):
    empty = Experiment.objects.create(key="empty", prompt_name=PROMPT)
    response = admin_client.get(compare_url(empty))
    assert response.status_code == 200
    assert Hooks(response.content.decode()).srm == "none"


# --- Access ----------------------------------------------------------------------------------


def test_staff_without_permissions_get_403(client, django_user_model, experiment):
    staff = django_user_model.objects.create_user(
        "staffer", password="x-pass-123456", is_staff=True
    )
    client.force_login(staff)
    assert client.get(compare_url(experiment)).status_code == 403
    assert client.post(action_url(experiment, "start")).status_code == 403
    assert client.get(change_url(experiment)).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def test_staff_who_may_view_get_the_comparison_but_no_buttons(
    client, django_user_model, experiment
):
    viewer = django_user_model.objects.create_user(
        "viewer", password="x-pass-123456", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_experiment"))
    client.force_login(viewer)
    assert client.get(compare_url(experiment)).status_code == 200
    html = client.get(change_url(experiment)).content.decode()
    assert "data-action=" not in html
    assert client.post(action_url(experiment, "start")).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def test_promoting_also_needs_the_prompt_version_permission(client, django_user_model, experiment):
    operator = django_user_model.objects.create_user("op", password="x-pass-123456", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_experiment", "change_experiment"])
    )
    client.force_login(operator)
    html = client.get(change_url(experiment)).content.decode()
    assert 'data-action="start"' in html and 'data-action="promote-control"' not in html
    response = client.post(action_url(experiment, "complete"), {"promote": "experiment"})
    assert response.status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "draft"
    assert client.post(action_url(experiment, "start")).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == "running"


def test_non_staff_are_sent_to_the_admin_login(client, django_user_model, experiment):
    client.force_login(django_user_model.objects.create_user("plain"))
    response = client.get(compare_url(experiment))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
