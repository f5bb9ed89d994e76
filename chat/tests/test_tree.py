"""chat.tree without a database: the old linear reading, paths, versions, descent."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chat.tree import Tree, linear_parents


@dataclass
class M:
    pk: int
    role: str
    reply_to_id: int | None = None


def test_linear_reading_keeps_the_latest_reply_and_makes_older_ones_versions():
    # q1, a1 (regenerated as a2), q3, a4 (failed), a5: reads q1 a2 q3 a5 as before.
    rows = [
        M(1, "user"),
        M(2, "assistant", 1),
        M(3, "assistant", 1),
        M(4, "user"),
        M(5, "assistant", 4),
        M(6, "assistant", 4),
    ]
    parents, leaf = linear_parents(rows)
    assert parents == {1: None, 2: 1, 3: 1, 4: 3, 5: 4, 6: 4}
    assert leaf == 6
    tree = Tree(parents, {m.pk: m.role for m in rows}, {m.pk: (_t(m.pk), m.pk) for m in rows})
    assert tree.path_to(leaf) == [1, 3, 4, 6]
    assert tree.versions(3).ids == (2, 3) and tree.versions(3).index == 2
    assert tree.versions(3).previous == 2 and tree.versions(3).next is None
    assert tree.versions(2).previous is None and tree.versions(2).next == 3
    assert tree.versions(4).count == 1


def test_a_user_message_without_reply_is_followed_by_the_next_one():
    rows = [M(1, "user"), M(2, "user"), M(3, "assistant", 2), M(4, "assistant")]
    parents, leaf = linear_parents(rows)
    assert parents[2] == 1 and leaf == 3
    assert parents[4] is None  # a reply without its question stays off the path
    assert linear_parents([]) == ({}, None)


def test_descend_follows_the_version_chosen_last_and_edits_are_user_siblings():
    # 1 -> 2 ; edit of 1 = 3 -> 4 ; regenerate of 4 = 5
    parents = {1: None, 2: 1, 3: None, 4: 3, 5: 3}
    roles = {1: "user", 2: "assistant", 3: "user", 4: "assistant", 5: "assistant"}
    chosen = {pk: (_t(pk), pk) for pk in parents}
    tree = Tree(parents, roles, chosen)
    assert tree.versions(1).ids == (1, 3) and tree.versions(3).index == 2
    assert tree.descend(3) == 5  # the newest reply
    chosen[4] = (_t(10), 4)  # version 4 chosen after 5 was written
    assert Tree(parents, roles, chosen).descend(3) == 4
    assert tree.descend(1) == 2
    assert tree.path_to(5) == [3, 5]
    assert tree.path_to(99) == []


def _t(seconds: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
