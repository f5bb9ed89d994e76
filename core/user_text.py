"""Text a user sends that no database can store, whatever the backend.

PostgreSQL refuses a NUL character in a text column (``DataError``); SQLite stores it but
truncates it in places. Neither can encode a lone surrogate (``"\\ud800"``, which JSON allows
as an escape) as UTF-8. Each is refused at the edge with a 400 naming the field, so the answer
is the same on both databases and nothing is half-written (see docs/api.md, ``invalid_input``).
"""


def unstorable(value: str) -> str | None:
    """Return why ``value`` cannot be stored ("contains a NUL character", ...), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None
