"""resolve_config: defaults, live versions, canary assignment, exposures, pause and promote."""

from decimal import Decimal

import pytest

from experiments import services
from experiments.bucketing import assign
from experiments.config import SERVING, render_prompt, resolve_config
from experiments.models import Experiment, Exposure, PromptVersion, Variant
from experiments.tests.factories import make_canary
from experiments.tests.test_admin import change_url, form_data

pytestmark = pytest.mark.django_db


def version(
    n_model="gpt-4o-mini", prompt="You are v{n}. Hello {user_name}.", live=False, name="chat-system"
):
    v = services.new_prompt_version(
        name=name, system_prompt=prompt, model=n_model, temperature=Decimal("0.3"), max_tokens=300
    )
    v.system_prompt = v.system_prompt.replace("{n}", str(v.version))
    v.save(update_fields=["system_prompt"])
    if live:
        services.make_live(version=v)
    return v


@pytest.fixture
def canary(django_user_model):
    return make_canary(
        control=version(live=True),
        treatment=version(n_model="gpt-4o"),
        traffic_percent=10,
        start=True,
    )


def users(django_user_model, n):
    return [django_user_model.objects.create_user(f"u{i}") for i in range(n)]


def test_without_versions_the_settings_serve(django_user_model, settings):
    user = django_user_model.objects.create_user("ann", first_name="Ann")
    settings.AI_SYSTEM_PROMPT = "Hi {user_name}, today is {today}. {unknown} stays."
    config = resolve_config(user, "chat")
    assert config.model == settings.AI_MODEL and config.prompt_version_id is None
    assert (
        config.system_prompt.startswith("Hi Ann, today is 20")
        and "{unknown} stays." in config.system_prompt
    )


def test_the_live_version_serves_and_becomes_immutable(django_user_model):
    user = django_user_model.objects.create_user("bob")
    v1 = version(live=True)
    config = resolve_config(user, "chat")
    assert (config.model, config.prompt_version_id, config.variant) == ("gpt-4o-mini", v1.pk, "")
    assert config.system_prompt == "You are v1. Hello bob."
    v1.refresh_from_db()
    assert v1.has_served
    # One live version per prompt: making v2 live retires v1.
    v2 = version(n_model="gpt-4.1")
    services.make_live(version=v2)
    assert list(PromptVersion.objects.filter(is_live=True)) == [v2]
    assert resolve_config(user, "chat").model == "gpt-4.1"


def test_running_experiment_serves_its_variants_and_records_exposure_once(
    canary, django_user_model
):
    experiment, v1, v2 = canary
    people = users(django_user_model, 300)
    served = {}
    for user in people:
        config = resolve_config(user, "chat")
        resolve_config(user, "chat")  # twice: still one exposure
        expected = assign(experiment.salt, user.pk, 10.0, [("control", 50.0), ("experiment", 50.0)])
        if expected is None:
            assert config.variant == "" and config.prompt_version_id == v1.pk  # live version
        else:
            assert config.variant == f"canary/{expected}"
            assert config.prompt_version_id == (v1.pk if expected == "control" else v2.pk)
        served[user.pk] = config.variant
    enrolled = [u for u, v in served.items() if v]
    assert 10 <= len(enrolled) <= 60  # ~10% of 300
    assert Exposure.objects.filter(experiment=experiment).count() == len(enrolled)
    assert {e.user_id for e in Exposure.objects.all()} == set(enrolled)


def test_pause_sends_everyone_to_live_and_resume_restores_assignments(canary, django_user_model):
    experiment, _v1, _ = canary
    people = users(django_user_model, 200)
    before = {u.pk: resolve_config(u, "chat").variant for u in people}
    services.pause_experiment(experiment=experiment)
    assert {resolve_config(u, "chat").variant for u in people} == {""}
    services.resume_experiment(experiment=experiment)
    assert {u.pk: resolve_config(u, "chat").variant for u in people} == before


def test_raising_traffic_only_adds_users(canary, django_user_model):
    experiment, _, _ = canary
    people = users(django_user_model, 200)
    at_10 = {u.pk: resolve_config(u, "chat").variant for u in people}
    services.set_traffic(experiment=experiment, percent=50)
    at_50 = {u.pk: resolve_config(u, "chat").variant for u in people}
    for pk, variant in at_10.items():
        if variant:
            assert at_50[pk] == variant
    assert sum(1 for v in at_50.values() if v) > sum(1 for v in at_10.values() if v)


def test_one_running_experiment_per_prompt(canary):
    _experiment, v1, v2 = canary
    other = Experiment.objects.create(key="other", prompt_name="chat-system")
    Variant.objects.create(experiment=other, key="control", prompt_version=v1, is_control=True)
    Variant.objects.create(experiment=other, key="b", prompt_version=v2)
    with pytest.raises(services.ExperimentError, match="Another experiment"):
        services.start_experiment(experiment=other)


def test_complete_by_promoting_makes_the_variant_live(canary, django_user_model):
    experiment, _, v2 = canary
    services.complete_experiment(experiment=experiment, promote="experiment")
    assert PromptVersion.objects.get(is_live=True) == v2
    user = django_user_model.objects.create_user("zed")
    config = resolve_config(user, "chat")
    assert config.model == "gpt-4o" and config.variant == ""
    with pytest.raises(services.ExperimentError):
        services.complete_experiment(experiment=experiment, promote=None)


def test_rollback_keeps_the_live_version(canary):
    experiment, v1, _ = canary
    services.complete_experiment(experiment=experiment, promote=None)
    assert PromptVersion.objects.get(is_live=True) == v1
    assert Experiment.objects.get().status == "completed"


def test_bad_traffic_and_transitions_are_refused(canary):
    experiment, _, _ = canary
    for bad in (-1, 101, "lots"):
        with pytest.raises(services.ExperimentError):
            services.set_traffic(experiment=experiment, percent=bad)
    with pytest.raises(services.ExperimentError, match="running"):
        services.resume_experiment(experiment=experiment)


def test_render_prompt_survives_stray_braces():
    assert render_prompt('JSON like {"a": 1}', None) == 'JSON like {"a": 1}'


def test_render_prompt_leaves_other_braces_alone(django_user_model):
    user = django_user_model.objects.create_user("kim")
    text = render_prompt('Hi {user_name}. Reply like {"a.b": {0}} or {a.b} or {today', user)
    assert text == 'Hi kim. Reply like {"a.b": {0}} or {a.b} or {today'


def test_what_serves_is_read_once_per_process_and_changes_apply_at_once(
    canary, django_user_model, django_assert_num_queries
):
    """experiments.config.SERVING: the running experiment and the live version are cached; every
    change made through this process's services (QuerySet.update, no signal) empties it."""
    experiment, v1, v2 = canary
    outsider = next(
        u
        for u in users(django_user_model, 50)
        if assign(experiment.salt, u.pk, 10.0, [("control", 50.0), ("experiment", 50.0)]) is None
    )
    # The first call serves v1 for the first time (so it re-reads once: v1 is now immutable).
    for _ in range(2):
        assert resolve_config(outsider, "chat").prompt_version_id == v1.pk
    with django_assert_num_queries(0):
        assert resolve_config(outsider, "chat").prompt_version_id == v1.pk
    services.make_live(version=v2)
    assert resolve_config(outsider, "chat").prompt_version_id == v2.pk
    services.set_traffic(experiment=experiment, percent=100)
    assert resolve_config(outsider, "chat").variant.startswith("canary/")
    services.pause_experiment(experiment=experiment)
    assert resolve_config(outsider, "chat").variant == ""


def _cached_with_v2_unserved(canary, django_user_model):
    """Everyone enrolled; the experiment cached by serving a control user (v1) twice, so the
    treatment's v2 is in this process's cache and has served nobody. Return a treated user."""
    experiment, _v1, _v2 = canary
    services.set_traffic(experiment=experiment, percent=100)
    weights = [("control", 50.0), ("experiment", 50.0)]
    people = users(django_user_model, 20)
    control = next(u for u in people if assign(experiment.salt, u.pk, 100.0, weights) == "control")
    for _ in range(2):  # the first call serves v1 for the first time, which re-reads once
        resolve_config(control, "chat")
    assert SERVING._values, "the experiment should be cached now"
    return next(u for u in people if assign(experiment.salt, u.pk, 100.0, weights) != "control")


def test_a_treatment_edited_in_the_admin_before_it_served_serves_its_new_text(
    canary, django_user_model, admin_client
):
    _experiment, _v1, v2 = canary
    treated = _cached_with_v2_unserved(canary, django_user_model)
    v2.refresh_from_db()
    assert v2.first_served_at is None
    response = admin_client.post(
        change_url(v2), form_data(v2, system_prompt="Edited before serving, {user_name}.")
    )
    assert response.status_code == 302 and PromptVersion.objects.filter(name=v2.name).count() == 2
    config = resolve_config(treated, "chat")
    assert config.system_prompt == f"Edited before serving, {treated.username}."


def test_a_version_is_served_as_stored_when_it_first_serves(canary, django_user_model):
    """Another process may edit an unserved version in place while this one has it cached: the
    first serve stamps the row and serves the text stored with the stamp, never the old copy."""
    _experiment, _v1, v2 = canary
    treated = _cached_with_v2_unserved(canary, django_user_model)
    # The in-place edit of another process: an update() this process's cache never hears of.
    PromptVersion.objects.filter(pk=v2.pk).update(system_prompt="Edited elsewhere.")
    config = resolve_config(treated, "chat")
    v2.refresh_from_db()
    assert config.system_prompt == v2.system_prompt == "Edited elsewhere."
    assert v2.first_served_at is not None
