"""core.query_templates: the ORM's SQL compiled once and run again, and core.sessions, which
loads sessions with it. On both databases of the suite (SQLite and PostgreSQL)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Exists, OuterRef
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.query_templates import QueryTemplate
from core.sessions import SessionStore

pytestmark = pytest.mark.django_db


def in_group(name):
    return Exists(Group.objects.filter(user=OuterRef("pk"), name=name))


def users(user_id, name):
    return User.objects.annotate(member=in_group(name)).filter(pk=user_id)


TEMPLATE = QueryTemplate(users, user_id=0, name="")


@pytest.fixture
def people():
    staff = Group.objects.create(name="staff")
    ann = User.objects.create_user("ann", email="ann@example.com", is_staff=True)
    ann.groups.add(staff)
    bob = User.objects.create_user("bob")
    return ann, bob


def test_rows_are_the_orms_with_their_annotations_converted(people):
    for user in people:
        for name in ("staff", "nobody"):
            (expected,) = users(user.pk, name)
            (found,) = TEMPLATE(user_id=user.pk, name=name)
            assert type(found) is User and found.pk == expected.pk
            assert {f.attname: getattr(found, f.attname) for f in User._meta.concrete_fields} == {
                f.attname: getattr(expected, f.attname) for f in User._meta.concrete_fields
            }
            # A boolean on both databases (SQLite answers an EXISTS with 0 or 1).
            assert found.member is expected.member is (user.username == "ann" and name == "staff")


def test_instances_are_the_orms_deferred_fields_ordering_and_state_included(people):
    def named(n):
        return User.objects.only("username").filter(pk__gte=n).order_by("-username")

    template = QueryTemplate(named, n=0)
    expected = list(named(people[0].pk))
    found = template(n=people[0].pk)
    assert [u.username for u in found] == [u.username for u in expected] == ["bob", "ann"]
    assert [u.get_deferred_fields() for u in found] == [u.get_deferred_fields() for u in expected]
    assert "email" in found[0].get_deferred_fields()
    assert all(not u._state.adding and u._state.db == "default" for u in found)
    # An instance read so saves as one read through the ORM: an UPDATE of the row it came from.
    found[1].username = "anne"
    found[1].save(update_fields=["username"])
    assert User.objects.get(pk=people[0].pk).username == "anne"
    assert User.objects.get(pk=people[0].pk).email == "ann@example.com"


def test_one_statement_per_run_and_none_when_nothing_is_found(people):
    TEMPLATE.first(user_id=people[0].pk, name="staff")  # compiled
    with CaptureQueriesContext(connection) as queries:
        assert TEMPLATE.first(user_id=10**9, name="staff") is None
    assert len(queries) == 1


def test_refuses_what_it_cannot_run():
    with pytest.raises(ImproperlyConfigured, match="ints or strings"):
        QueryTemplate(lambda when: User.objects.filter(date_joined=when), when=timezone.now())(
            when=timezone.now()
        )
    # A value the ORM writes into the SQL rather than passing it (a slice's bound).
    with pytest.raises(ImproperlyConfigured, match="do not reach the SQL"):
        QueryTemplate(lambda n: User.objects.all()[:-n], n=1)(n=1)
    # SQL that changes with the value.
    shape = QueryTemplate(
        lambda n: (
            User.objects.filter(pk=n) if n % 200 else User.objects.filter(pk=n, is_staff=True)
        ),
        n=0,
    )
    with pytest.raises(ImproperlyConfigured, match="depends on its values"):
        shape(n=1)
    with pytest.raises(ImproperlyConfigured, match="select_related"):
        QueryTemplate(lambda n: User.objects.select_related("x").filter(pk=n), n=0)(n=1)
    with pytest.raises(ImproperlyConfigured, match="values"):
        QueryTemplate(lambda n: User.objects.filter(pk=n).values("pk"), n=0)(n=1)
    with pytest.raises(TypeError, match="takes the values"):
        TEMPLATE(user_id=1)
    with pytest.raises(TypeError, match="must be int, not str"):
        TEMPLATE(user_id="1", name="staff")


def test_sessions_load_while_unexpired():
    store = SessionStore()
    store["k"] = "v"
    store.save()
    key = store.session_key
    assert SessionStore(key).load() == {"k": "v"}
    # Expired: nothing, and the key is dropped (a fresh one is made if the session is saved).
    type(store).get_model_class().objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    expired = SessionStore(key)
    assert expired.load() == {} and expired.session_key is None
    missing = SessionStore("x" * 32)
    assert missing.load() == {} and missing.session_key is None
