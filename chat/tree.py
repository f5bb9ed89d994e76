"""A conversation as a tree of messages: pure functions, no Django (tested in test_tree.py).

Each message has a parent (the message it follows: a reply's parent is the user message it
answers, a user message's parent is the reply it follows, ``None`` for a first message).
Siblings (children of one parent, of the same role) are the versions of one turn: the replies of
a Regenerate, the user messages of an Edit. The conversation reads along one path, from a root
down to its current leaf.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Node(Protocol):
    pk: int
    role: str
    reply_to_id: int | None


def linear_parents(messages: Iterable[Node]) -> tuple[dict[int, int | None], int | None]:
    """Return (parent of each message, leaf) for messages stored before the tree existed.

    The old reading: the user messages in order, each followed by its latest reply; earlier
    replies to the same message were hidden. Here they become older versions of that reply (the
    latest stays on the path), so the conversation reads exactly as before.
    ``messages``: one conversation's, in (created_at, id) order.
    """
    messages = list(messages)
    latest_reply: dict[int, int] = {}
    for m in messages:
        if m.role == "assistant" and m.reply_to_id is not None:
            latest_reply[m.reply_to_id] = m.pk
    parents: dict[int, int | None] = {}
    tail: int | None = None  # the end of the path so far
    for m in messages:
        if m.role == "user":
            parents[m.pk] = tail
            tail = latest_reply.get(m.pk, m.pk)
        else:
            # A reply without its question (none are written so) stays off the path.
            parents[m.pk] = m.reply_to_id
    return parents, tail


@dataclass(frozen=True, slots=True)
class Versions:
    """The versions of one turn: sibling ids oldest first, and this message's 1-based index."""

    ids: tuple[int, ...]
    index: int

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def previous(self) -> int | None:
        return self.ids[self.index - 2] if self.index > 1 else None

    @property
    def next(self) -> int | None:
        return self.ids[self.index] if self.index < self.count else None


class Tree:
    """The messages of one conversation as a tree, from their parent pointers."""

    def __init__(
        self,
        parents: Mapping[int, int | None],
        roles: Mapping[int, str],
        chosen: Mapping[int, tuple[datetime, int]],
    ):
        """``chosen``: a message's sort key among its siblings for "the one last chosen" (when
        it was created or last selected, then its id)."""
        self.parents = parents
        self.roles = roles
        self.chosen = chosen
        self.children: dict[int | None, list[int]] = {}
        for pk in sorted(parents):
            parent = parents[pk]
            if parent is not None and parent not in parents:
                parent = None
            self.children.setdefault(parent, []).append(pk)

    def path_to(self, leaf: int | None) -> list[int]:
        """Return the ids from the root down to ``leaf`` (empty if it is unknown)."""
        path: list[int] = []
        seen: set[int] = set()
        node = leaf
        while node is not None and node in self.parents and node not in seen:
            seen.add(node)
            path.append(node)
            node = self.parents[node]
        path.reverse()
        return path

    def descend(self, pk: int) -> int:
        """Return the leaf reached from ``pk`` by following, at each step, the child last chosen."""
        seen = {pk}
        while kids := [k for k in self.children.get(pk, []) if k not in seen]:
            pk = max(kids, key=lambda k: self.chosen[k])
            seen.add(pk)
        return pk

    def versions(self, pk: int) -> Versions:
        parent = self.parents.get(pk)
        if parent is not None and parent not in self.parents:
            parent = None
        # Numbered in the order they were written (children are in id order).
        siblings = [k for k in self.children.get(parent, []) if self.roles[k] == self.roles[pk]]
        return Versions(tuple(siblings), siblings.index(pk) + 1)
