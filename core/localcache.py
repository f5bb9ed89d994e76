"""Small configuration tables, read once per process and kept for ``CONFIG_CACHE_SECONDS``.

Every posted message needs the running experiment and the live prompt version, the user's
limits and the model's price: ten SQL statements a reply that return the same rows nearly
every time (docs/performance.md). A ``LocalCache`` keeps such values in this process's memory.

- Saving or deleting one of its models in this process (the admin, a management command, a
  test) empties it at once, through Django's model signals; code that changes such rows with
  ``QuerySet.update`` (which sends none) calls ``changed()``.
- Other processes see such a change within ``CONFIG_CACHE_SECONDS`` (default 5; 0 turns the
  caches off), the trade-off every process-local cache makes: an experiment started in the
  admin serves its first users on the other processes up to five seconds later; a lowered
  quota is enforced there up to five seconds later.

Values are shared by the loop and the ``db()`` threads: a value is replaced, never changed in
place, so a reader sees an old value or a new one. Two threads missing at once both read the
database, which is harmless (the read runs outside the lock; only the store takes it). A change
empties the cache at once and again when its transaction commits (a thread that read the old
rows in between would otherwise keep them for the TTL), and a value read while the cache was
being emptied is returned but not kept.
"""

import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_save

_caches: list["LocalCache"] = []


class LocalCache:
    def __init__(self, name: str):
        self.name = name
        self._values: dict[Any, tuple[float, Any]] = {}
        self._generation = 0  # bumped by every clear: a load that straddles one is not kept
        self._lock = threading.Lock()  # no clear lands between that check and the store
        _caches.append(self)

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        """Return the cached value of ``key``, or ``load()`` (kept for the TTL)."""
        ttl = settings.CONFIG_CACHE_SECONDS
        if ttl <= 0:
            return load()
        now = time.monotonic()
        hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        value = load()
        with self._lock:
            if generation == self._generation:
                self._values[key] = (now + ttl, value)
        return value

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._generation += 1
            self._values = {}

    def forget(self, key: Any) -> None:
        """Forget one value."""
        with self._lock:
            self._generation += 1
            self._values.pop(key, None)

    def changed(self, using: str | None = None) -> None:
        """Empty the cache now and again when the current transaction commits: for changes
        that send no signal (``QuerySet.update``)."""
        self.clear()
        transaction.on_commit(self.clear, using=using)

    def on_change(self, key: Callable[..., Any] | None = None) -> Callable[..., None]:
        """A signal receiver that empties the cache (or forgets ``key(**signal_kwargs)``) now
        and again when the change's transaction commits."""

        def receiver(**kwargs) -> None:
            if key is None:
                self.changed(using=kwargs.get("using"))
                return
            forget = partial(self.forget, key(**kwargs))
            forget()
            transaction.on_commit(forget, using=kwargs.get("using"))

        return receiver

    def clear_on_change(
        self, *models: type[Model], m2m: Iterable[type[Model]] = ()
    ) -> "LocalCache":
        """Empty this cache whenever one of ``models`` is saved or deleted, or one of the
        ``m2m`` through-models' relations changes, in this process."""
        receiver = self.on_change()
        for model in models:
            uid = f"localcache:{self.name}:{model._meta.label}"
            post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ":save")
            post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=uid + ":del")
        for through in m2m:
            uid = f"localcache:{self.name}:{through._meta.label}:m2m"
            m2m_changed.connect(receiver, sender=through, weak=False, dispatch_uid=uid)
        return self


def clear_all() -> None:
    """Empty every cache of this process (tests; after a bulk change signals do not see)."""
    for cache in _caches:
        cache.clear()


def _on_setting_changed(**kwargs) -> None:
    # Cached values may derive from settings (the default limits): tests override them.
    clear_all()


setting_changed.connect(_on_setting_changed, dispatch_uid="localcache:settings")
