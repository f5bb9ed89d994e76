"""The Redis backend's Lua scripts (each one atomic, one round trip), kept as ``lua/*.lua``.

A script whose first line is ``-- uses: NAME`` gets ``lua/NAME.lua`` (a shared Lua function)
put in front of it when it is loaded.
"""

from functools import cache
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"


@cache
def lua(name: str) -> str:
    """Return the source of ``lua/<name>.lua``, with the shared functions it uses in front."""
    source = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    first_line = source.partition("\n")[0]
    if first_line.startswith("-- uses: "):
        used = first_line.removeprefix("-- uses: ").split(",")
        source = "".join(lua(part.strip()) for part in used) + source
    return source
