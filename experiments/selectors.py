"""The comparison of an experiment's groups: per-variant metrics, and treatment vs control tests.

Calls, latency, tokens and cost come from the experiment's AI calls (``AICall.variant`` is the
``experiment/variant`` label, so one indexed filter per variant), p95 latency from the daily
rollups' histograms, satisfaction from feedback, and exposure counts from ``Exposure``.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, FloatField, Q, Sum
from django.db.models.functions import Cast, TruncDate

from analytics.histogram import percentile
from analytics.models import AICall, CallRollup
from analytics.rollups import merge_histograms
from analytics.timezones import day_bounds, local_day, reporting_zone, today
from core.task_types import TaskType

from . import stats
from .models import EvalRun, Experiment, Exposure, Feedback, PromptVersion, Variant

ERROR_STATUSES = ("error", "timeout", "rate_limited")


@dataclass(frozen=True)
class Moments:
    """Count, mean and sample variance of a per-call quantity (enough for Welch's t-test)."""

    n: int
    mean: float | None
    variance: float | None


def _moments(calls, field_name: str) -> Moments:
    value = Cast(F(field_name), FloatField())
    agg = calls.filter(**{f"{field_name}__isnull": False}).aggregate(
        n=Count("id"), total=Sum(value), total_sq=Sum(value * value)
    )
    n = agg["n"] or 0
    if n == 0:
        return Moments(0, None, None)
    mv = stats.mean_var(n, agg["total"] or 0.0, agg["total_sq"] or 0.0)
    if mv is None:
        return Moments(n, (agg["total"] or 0.0) / n, None)
    return Moments(n, mv[0], mv[1])


@dataclass
class VariantStats:
    key: str
    label: str
    is_control: bool
    weight: int
    prompt_version: str
    model: str
    users: int = 0
    conversations: int = 0
    calls: int = 0
    errors: int = 0
    replies: int = 0
    rated: int = 0
    thumbs_up: int = 0
    cost_usd: Decimal = Decimal(0)
    latency: Moments = field(default_factory=lambda: Moments(0, None, None))
    ttft: Moments = field(default_factory=lambda: Moments(0, None, None))
    output_tokens: Moments = field(default_factory=lambda: Moments(0, None, None))
    cost: Moments = field(default_factory=lambda: Moments(0, None, None))
    p95_latency_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def satisfaction(self) -> float | None:
        return self.thumbs_up / self.rated if self.rated else None

    @property
    def satisfaction_interval(self) -> tuple[float, float] | None:
        return stats.wilson_interval(self.thumbs_up, self.rated) if self.rated else None

    @property
    def rating_rate(self) -> float | None:
        return self.rated / self.replies if self.replies else None

    @property
    def cost_per_user(self) -> Decimal | None:
        return self.cost_usd / self.users if self.users else None


@dataclass(frozen=True)
class Difference:
    """Treatment minus control for one metric, with its test, or no verdict below min sample."""

    metric: str
    control: float | None
    treatment: float | None
    diff: float | None
    relative: float | None
    p_value: float | None
    enough_data: bool
    test: str  # "z" (proportions) or "welch" (means)

    @property
    def significant(self) -> bool:
        return self.enough_data and self.p_value is not None and self.p_value < 0.05


@dataclass(frozen=True)
class Comparison:
    experiment: Experiment
    variants: list[VariantStats]
    differences: dict[str, list[Difference]]  # treatment key -> differences vs control
    srm: stats.SRM | None
    min_sample: int


def variant_stats(variant: Variant) -> VariantStats:
    # The chat's replies, through the relation Feedback declares: experiments imports no chat
    # module (the chat is the layer above).
    Message: Any = Feedback._meta.get_field("message").related_model

    label = variant.label
    version = variant.prompt_version
    result = VariantStats(
        key=variant.key,
        label=label,
        is_control=variant.is_control,
        weight=variant.weight,
        prompt_version=str(version),
        model=version.model,
    )
    calls = AICall.objects.filter(variant=label, task_type=TaskType.CHAT)
    totals = calls.aggregate(
        n=Count("id"),
        errors=Count("id", filter=Q(status__in=ERROR_STATUSES)),
        conversations=Count("conversation_id", distinct=True),
        cost=Sum("cost_usd"),
    )
    result.calls = totals["n"]
    result.errors = totals["errors"]
    result.conversations = totals["conversations"]
    result.cost_usd = totals["cost"] or Decimal(0)
    ok = calls.filter(status="ok")
    result.latency = _moments(ok, "latency_ms")
    result.ttft = _moments(ok, "ttft_ms")
    result.output_tokens = _moments(ok, "output_tokens")
    result.cost = _moments(calls, "cost_usd")
    result.users = Exposure.objects.filter(
        experiment_id=variant.experiment_id, variant=variant.key
    ).count()
    replies = Message.objects.filter(
        variant=label, role=Message.Role.ASSISTANT, status__in=("completed", "cancelled")
    )
    result.replies = replies.count()
    feedback = Feedback.objects.filter(variant=label).aggregate(
        rated=Count("id"), up=Count("id", filter=Q(rating=1))
    )
    result.rated, result.thumbs_up = feedback["rated"], feedback["up"]
    histograms = CallRollup.objects.filter(
        period=CallRollup.Period.DAY, variant=label, task_type=TaskType.CHAT, status="ok"
    ).values_list("latency_histogram", flat=True)
    result.p95_latency_ms = percentile(merge_histograms(histograms), 0.95)
    return result


def _proportion(metric, control_s, control_n, treat_s, treat_n, min_sample) -> Difference:
    test = stats.two_proportion_z_test(control_s, control_n, treat_s, treat_n)
    enough = min(control_n, treat_n) >= min_sample
    return Difference(
        metric=metric,
        control=control_s / control_n if control_n else None,
        treatment=treat_s / treat_n if treat_n else None,
        diff=test.diff if test else None,
        relative=test.relative_diff if test else None,
        p_value=test.p_value if test else None,
        enough_data=enough and test is not None,
        test="z",
    )


def _means(metric, control: Moments, treatment: Moments, min_sample) -> Difference:
    test = None
    if (
        control.mean is not None
        and control.variance is not None
        and treatment.mean is not None
        and treatment.variance is not None
    ):
        test = stats.welch_t_test(
            control.mean,
            control.variance,
            control.n,
            treatment.mean,
            treatment.variance,
            treatment.n,
        )
    enough = min(control.n, treatment.n) >= min_sample
    return Difference(
        metric=metric,
        control=control.mean,
        treatment=treatment.mean,
        diff=test.diff if test else None,
        relative=test.relative_diff if test else None,
        p_value=test.p_value if test else None,
        enough_data=enough and test is not None,
        test="welch",
    )


def compare(experiment: Experiment) -> Comparison:
    """Return every variant's numbers and each treatment's differences from the control."""
    variants = list(experiment.variants.select_related("prompt_version", "experiment"))
    per_variant = [variant_stats(v) for v in variants]
    control = next((v for v in per_variant if v.is_control), None)
    minimum = experiment.min_sample
    differences: dict[str, list[Difference]] = {}
    if control is not None:
        for t in per_variant:
            if t.is_control:
                continue
            differences[t.key] = [
                _proportion(
                    "satisfaction", control.thumbs_up, control.rated, t.thumbs_up, t.rated, minimum
                ),
                _proportion(
                    "error rate", control.errors, control.calls, t.errors, t.calls, minimum
                ),
                _means("latency (ms)", control.latency, t.latency, minimum),
                _means("time to first token (ms)", control.ttft, t.ttft, minimum),
                _means("output tokens per reply", control.output_tokens, t.output_tokens, minimum),
                _means("cost per call (USD)", control.cost, t.cost, minimum),
            ]
    srm = (
        stats.srm_chi_square([v.users for v in per_variant], [float(v.weight) for v in per_variant])
        if per_variant
        else None
    )
    return Comparison(experiment, per_variant, differences, srm, minimum)


# --- Reads for the admin pages --------------------------------------------------------------------


def experiments_using(version: PromptVersion) -> list[str]:
    """Return the keys of the experiments with a variant on ``version``, sorted."""
    keys = Variant.objects.filter(prompt_version=version).values_list("experiment__key", flat=True)
    return sorted(set(keys))


def previous_version(version: PromptVersion) -> PromptVersion | None:
    return (
        PromptVersion.objects.filter(name=version.name, version__lt=version.version)
        .order_by("-version")
        .first()
    )


def live_version(name: str) -> PromptVersion | None:
    return PromptVersion.objects.filter(name=name, is_live=True).first()


def experiment_variants(experiment: Experiment) -> list[Variant]:
    """Return the experiment's variants with their prompt versions."""
    return list(experiment.variants.select_related("prompt_version"))


def variant_version(experiment: Experiment, key: str) -> PromptVersion:
    return experiment.variants.select_related("prompt_version").get(key=key).prompt_version


@dataclass(frozen=True)
class EvalSummary:
    run: EvalRun
    rows: list[dict]
    unjudged: int
    total: int


def latest_eval(experiment: Experiment) -> EvalSummary | None:
    """Return the newest finished eval run of ``experiment``, with its per-variant lines."""
    run = experiment.eval_runs.filter(finished_at__isnull=False).first()
    if run is None:
        return None
    return EvalSummary(
        run=run,
        rows=[{"key": key, **line} for key, line in sorted(run.summary.items())],
        unjudged=run.results.exclude(error="").count(),
        total=run.results.count(),
    )


# --- Day by day ---------------------------------------------------------------------------------

MAX_DAILY_DAYS = 90


@dataclass(frozen=True)
class DailyMetrics:
    """Per variant key, one value per day (None: nothing to measure that day)."""

    days: list[date]
    satisfaction: dict[str, list[float | None]]
    error_rate: dict[str, list[float | None]]
    latency_ms: dict[str, list[float | None]]
    cost_per_call: dict[str, list[float | None]]


def _experiment_days(experiment: Experiment) -> list[date]:
    if experiment.started_at is None:
        return []
    first = local_day(experiment.started_at)
    last = local_day(experiment.ended_at) if experiment.ended_at else today()
    first = max(first, last - timedelta(days=MAX_DAILY_DAYS - 1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_metrics(experiment: Experiment) -> DailyMetrics:
    """Return each variant's satisfaction, error rate, average latency and cost per call per day
    of the experiment (from its start to its end or today, at most 90 days): calls from the daily
    rollups, satisfaction from the feedback given that day."""
    days = _experiment_days(experiment)
    variants = list(experiment.variants.all())
    empty: dict[str, list[float | None]] = {v.key: [None] * len(days) for v in variants}
    result = DailyMetrics(
        days,
        {k: list(v) for k, v in empty.items()},
        {k: list(v) for k, v in empty.items()},
        {k: list(v) for k, v in empty.items()},
        {k: list(v) for k, v in empty.items()},
    )
    if not days or not variants:
        return result
    index = {d: i for i, d in enumerate(days)}
    by_label = {v.label: v.key for v in variants}
    start, _ = day_bounds(days[0])
    _, end = day_bounds(days[-1])
    zone = reporting_zone()

    rollups = (
        CallRollup.objects.filter(
            period=CallRollup.Period.DAY,
            task_type=TaskType.CHAT,
            variant__in=list(by_label),
            bucket_start__gte=start,
            bucket_start__lt=end,
        )
        .values("bucket_start", "variant")
        .annotate(
            n_calls=Sum("calls"),
            n_errors=Sum("errors"),
            n_unpriced=Sum("unpriced_calls"),
            cost=Sum("cost_usd"),
            ok_calls=Sum("calls", filter=Q(status="ok")),
            ok_latency=Sum("latency_ms_sum", filter=Q(status="ok")),
        )
    )
    for row in rollups:
        i = index.get(row["bucket_start"].astimezone(zone).date())
        if i is None:
            continue
        key = by_label[row["variant"]]
        if row["n_calls"]:
            result.error_rate[key][i] = row["n_errors"] / row["n_calls"]
        if row["ok_calls"]:
            result.latency_ms[key][i] = row["ok_latency"] / row["ok_calls"]
        priced = row["n_calls"] - (row["n_unpriced"] or 0)
        if priced > 0:
            result.cost_per_call[key][i] = float(row["cost"]) / priced

    feedback = (
        Feedback.objects.filter(
            variant__in=list(by_label), created_at__gte=start, created_at__lt=end
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day", "variant")
        .annotate(rated=Count("id"), up=Count("id", filter=Q(rating=1)))
    )
    for rated in feedback:
        i = index.get(rated["day"])
        if i is not None and rated["rated"]:
            result.satisfaction[by_label[rated["variant"]]][i] = rated["up"] / rated["rated"]
    return result
