"""Create the demo login and a first conversation. Idempotent; for `make run` only."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from analytics.demo import seed_call_history
from chat.models import Conversation, Message
from chat.rendering import render_markdown
from experiments.demo import KEY as CANARY_KEY
from experiments.demo import seed_canary

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 (a published demo login, refused outside DEBUG)

WELCOME = """Welcome! This is a **demo** conversation.

- Replies stream token by token from {source}.
- Try a fault from the composer: add `[sim:status=429]`, `[sim:stall]` or `[sim:disconnect]`
  to a message to see how errors look.
- Staff pages: the Django admin at `/admin/`.
"""


class Command(BaseCommand):
    help = "Create the demo user (demo/demo) and a welcome conversation (DEBUG only)."

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
        if not Conversation.objects.filter(user=user).exists():
            conversation = Conversation.objects.create(
                user=user, title="Welcome (demo)", title_generated=True
            )
            question = Message.objects.create(
                conversation=conversation, role=Message.Role.USER, content="What can I do here?"
            )
            source = (
                "the built-in simulator" if settings.AI_USING_SIMULATOR else settings.AI_BASE_URL
            )
            text = WELCOME.format(source=source)
            Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                reply_to=question,
                content=text,
                html=render_markdown(text),
                status=Message.Status.COMPLETED,
                model="demo",
            )
        others = [
            users.objects.get_or_create(username=name, defaults={"email": f"{name}@example.com"})[0]
            for name in ("ana.demo", "li.demo", "sam.demo")
        ]
        made = seed_call_history([user, *others])
        if made:
            self.stdout.write(f"Demo AI call history: {made:,} calls over 30 days (marked demo).")
        exposed = seed_canary()
        if exposed:
            self.stdout.write(
                f"Demo canary experiment '{CANARY_KEY}' running at 10%: {exposed} users exposed."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo login: username '{DEMO_USERNAME}', password '{DEMO_PASSWORD}'"
            )
        )
