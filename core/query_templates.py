"""Hot read queries compiled once: the SQL the ORM makes of a query, run again with new values.

Turning a queryset into SQL is most of a short query's CPU in Django. On the benchmark machine
(docs/performance.md) the conversation a message is posted to, read with its two ``EXISTS``
flags, cost 1.4 ms of CPU through the ORM and 0.4 ms as the same SQL run again; a POST's CPU
is what a burst of posts queues behind. A ``QueryTemplate`` compiles its query on first use
(per database alias), finds where each value sits among the SQL's parameters, and from then on
runs that SQL with the values given. Rows become model instances as the ORM's own
``ModelIterable`` makes them after the same compile: each column converted by the backend's and
its field's converters, ``Model.from_db`` for the model's columns, and the query's annotations
set as attributes. (``Manager.raw`` did this until 2026-12-07; it maps the columns to fields by
name on every run: a session read cost 235-281 µs of CPU that way, 148-169 µs this way.)

The SQL is always the ORM's own, so a schema change or another database backend changes it
with the models. Only queries of one model (no ``select_related``) whose SQL does not depend
on the values qualify (no ``__in`` over a list of varying length, no value that the ORM would
fold away): the template checks that two compilations with different values give the same SQL
and refuses the query otherwise. Values are ints or strings (an id, a key), each of the type
of its sample, and reach the database as the ORM passes such values.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

# Stand-ins for the values while compiling: improbable, distinct, and inside a 32-bit
# integer column's range (Django folds a lookup outside a column's range away).
_INT_MARKER = -1_987_654_000
_STR_MARKER = "\x1fquery-template-marker-"


def _markers(samples: dict[str, Any], round_: int) -> dict[str, Any]:
    markers: dict[str, Any] = {}
    for index, (key, sample) in enumerate(samples.items()):
        number = round_ * 100 + index
        if isinstance(sample, bool) or not isinstance(sample, int | str):
            raise ImproperlyConfigured(
                f"QueryTemplate values must be ints or strings; {key!r} is {type(sample).__name__}"
            )
        markers[key] = _INT_MARKER - number if isinstance(sample, int) else f"{_STR_MARKER}{number}"
    return markers


@dataclass(frozen=True, slots=True)
class _Compiled:
    model: Any
    sql: str
    params: list
    slots: list[tuple[int, str]]  # (position among the parameters, the value's name)
    field_names: list[str]  # the attnames of the model's columns, in the row's order
    fields: slice  # where the model's columns are in a row
    annotations: list[tuple[str, int]]  # (attribute, position in a row)
    converters: list[tuple[int, tuple[list, Any]]]  # position -> (converters, expression)
    fetch_mode: Any


class QueryTemplate:
    """A read query compiled once per database alias and run with new values.

    ``build(**values)`` returns the queryset for ``values``; ``samples`` names each value with
    an example of its type (int or str). ``template(**values)`` returns the instances found;
    ``template.first(**values)`` the first one or None.
    """

    def __init__(self, build: Callable[..., QuerySet], **samples: Any):
        if not samples:
            raise ImproperlyConfigured("a QueryTemplate needs at least one value")
        self.build = build
        self.samples = samples
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile_once(self, round_: int, using: str) -> tuple[QuerySet, Any, str, list, dict]:
        markers = _markers(self.samples, round_)
        queryset = self.build(**markers).using(using)
        if queryset.query.select_related or getattr(queryset, "_fields", None) is not None:
            # Rows become instances of the query's one model: a joined model's columns would
            # have nowhere to go, and values() rows are not models.
            raise ImproperlyConfigured(
                "QueryTemplate: a query with select_related() or values() cannot be compiled once"
            )
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        slots = {}
        for position, param in enumerate(params):
            for key, marker in markers.items():
                if type(param) in (int, str) and param == marker:
                    slots[position] = key
        missing = set(markers) - set(slots.values())
        if missing:
            raise ImproperlyConfigured(
                f"QueryTemplate: the value(s) {sorted(missing)} do not reach the SQL as "
                "parameters; the query cannot be compiled once"
            )
        return queryset, compiler, sql, list(params), slots

    def compiled(self, using: str = DEFAULT_DB_ALIAS) -> _Compiled:
        """The query's SQL, parameters, value slots and row plan for ``using`` (compiled once)."""
        found = self._compiled.get(using)
        if found is not None:
            return found
        with self._lock:
            if using not in self._compiled:
                queryset, compiler, sql, params, slots = self._compile_once(1, using)
                _, _, again, params_again, slots_again = self._compile_once(2, using)
                if again != sql or slots_again != slots or len(params_again) != len(params):
                    raise ImproperlyConfigured(
                        "QueryTemplate: the query's SQL depends on its values; it cannot be "
                        "compiled once"
                    )
                # How a row becomes an instance, as the ORM's ModelIterable does it after the
                # same compile: the model's columns, then the annotations, each converted by
                # the backend's and the field's converters.
                klass_info = compiler.klass_info
                first, last = klass_info["select_fields"][0], klass_info["select_fields"][-1]
                self._compiled[using] = _Compiled(
                    model=klass_info["model"],
                    sql=sql,
                    params=params,
                    slots=sorted(slots.items()),
                    field_names=[c[0].target.attname for c in compiler.select[first : last + 1]],
                    fields=slice(first, last + 1),
                    annotations=list(compiler.annotation_col_map.items()),
                    converters=list(
                        compiler.get_converters([c[0] for c in compiler.select]).items()
                    ),
                    fetch_mode=queryset._fetch_mode,  # type: ignore[attr-defined]
                )
            return self._compiled[using]

    def __call__(self, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list:
        """The instances of the rows the query finds for ``values``."""
        if values.keys() != self.samples.keys():
            raise TypeError(
                f"QueryTemplate takes the values {sorted(self.samples)}, got {sorted(values)}"
            )
        for key, value in values.items():
            # The ORM would convert a value to its field's type; here it goes to the database
            # as it is, so it must be of that type already.
            if type(value) is not type(self.samples[key]):
                raise TypeError(
                    f"QueryTemplate value {key!r} must be {type(self.samples[key]).__name__}, "
                    f"not {type(value).__name__}"
                )
        plan = self.compiled(using)
        params = list(plan.params)
        for position, key in plan.slots:
            params[position] = values[key]
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall()
        found = []
        for fetched in rows:
            row = list(fetched)
            for position, (converters, expression) in plan.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
            instance = plan.model.from_db(
                using, plan.field_names, row[plan.fields], fetch_mode=plan.fetch_mode
            )
            for name, position in plan.annotations:
                setattr(instance, name, row[position])
            found.append(instance)
        return found

    def first(self, using: str = DEFAULT_DB_ALIAS, **values: Any):
        """The first row's instance, or None (the query's own ordering and limit apply)."""
        found = self(using, **values)
        return found[0] if found else None
