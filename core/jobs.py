"""The periodic jobs ``manage.py monitor`` runs, contributed by the apps.

Core runs them without knowing the apps: each app registers its jobs in ``AppConfig.ready()``
(the chat: the sweeper; experiments: the guardrails; analytics: rollups, retention, reports).
"""

from collections.abc import Callable
from dataclasses import dataclass

Job = Callable[[], object]  # returns something worth a log line, or a falsy value


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    make: Callable[[], Job]  # called once per monitor process (a job may keep state)
    order: int


_registered: dict[str, PeriodicJob] = {}


def register_job(name: str, make: Callable[[], Job], *, order: int) -> None:
    """Have ``monitor`` run ``make()`` every pass; lower ``order`` runs first."""
    _registered[name] = PeriodicJob(name=name, make=make, order=order)


def periodic_jobs() -> list[tuple[str, Job]]:
    """The jobs of one monitor process, made now, in their order."""
    ordered = sorted(_registered.values(), key=lambda job: job.order)
    return [(job.name, job.make()) for job in ordered]
