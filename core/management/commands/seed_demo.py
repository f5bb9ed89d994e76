"""Create the demo logins and the apps' demo data (``core.demo``). Idempotent; for `make run` only."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.demo import seeders

# Published demo logins, refused outside DEBUG: a superuser (the staff pages; exempt from
# quotas) and an ordinary user, who sees the quota line under the composer.
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105
USER_USERNAME = "alice"
USER_PASSWORD = "alice"  # noqa: S105


class Command(BaseCommand):
    help = (
        "Create the demo logins (demo/demo, a superuser; alice/alice) and demo data (DEBUG only)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force", action="store_true", help="Seed even with DEBUG off (never in production)."
        )

    def handle(self, *args, force=False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates a published login; it runs only with DEBUG on.")
        users = get_user_model()
        user = users.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user = users.objects.create_superuser(
                DEMO_USERNAME, email="demo@example.com", password=DEMO_PASSWORD
            )
        if not users.objects.filter(username=USER_USERNAME).exists():
            users.objects.create_user(
                USER_USERNAME, email="alice@example.com", password=USER_PASSWORD
            )
        others = [
            users.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})[0]
            for name in ("ana.demo", "li.demo", "sam.demo")
        ]
        for seed in seeders():
            if line := seed(user=user, others=others):
                self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo login: username '{DEMO_USERNAME}', password '{DEMO_PASSWORD}' (a superuser: "
                "the admin and the AI usage dashboard at /admin/; exempt from quotas)\n"
                f"Demo login: username '{USER_USERNAME}', password '{USER_PASSWORD}' (an ordinary "
                "user, with the default quotas)"
            )
        )
