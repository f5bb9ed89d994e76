"""The PostgreSQL backend (``base``) and how long a process's statements may take.

A web process is bounded by ``DB_STATEMENT_TIMEOUT_SECONDS``; a job (every ``manage.py``
command but ``runserver``: migrate, monitor, reports) by ``DB_JOB_STATEMENT_TIMEOUT_SECONDS``,
none by default (``deadline`` explains both bounds). Kept free of psycopg, so that manage.py
can name the role before anything else is imported.
"""

from django.conf import settings

_job = False


def run_as_job(job: bool = True) -> None:
    """Make this process a job (bounded by DB_JOB_STATEMENT_TIMEOUT_SECONDS, none by default).

    Call it before the first connection: connections carry the timeout they were opened with.
    """
    global _job
    _job = job


def is_job() -> bool:
    return _job


def statement_timeout() -> float:
    """This process's statement timeout in seconds (0: none)."""
    if _job:
        return settings.DB_JOB_STATEMENT_TIMEOUT_SECONDS
    return settings.DB_STATEMENT_TIMEOUT_SECONDS
