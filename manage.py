#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aiproject.settings")
    if sys.argv[1:2] != ["runserver"]:
        # A command is a job (migrate, monitor, reports): its statements are bounded by
        # DB_JOB_STATEMENT_TIMEOUT_SECONDS, not the web's DB_STATEMENT_TIMEOUT_SECONDS.
        from core.postgresql import run_as_job

        run_as_job()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
