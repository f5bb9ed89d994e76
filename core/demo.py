"""The demo data ``manage.py seed_demo`` creates, contributed by the apps.

Each app registers a seeder in ``AppConfig.ready()``; ``seed_demo`` makes the demo logins and
calls them in order. A seeder is idempotent and returns a line to print, or "" for none.
"""

from collections.abc import Callable

Seeder = Callable[..., str]  # seeder(*, user, others) -> str

_registered: dict[str, tuple[int, Seeder]] = {}


def register_seeder(name: str, seed: Seeder, *, order: int) -> None:
    """Have ``seed_demo`` call ``seed(user=demo_user, others=[...])``; lower ``order`` first."""
    _registered[name] = (order, seed)


def seeders() -> list[Seeder]:
    return [seed for _, seed in sorted(_registered.values(), key=lambda entry: entry[0])]
