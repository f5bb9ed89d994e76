#!/usr/bin/env bash
# Print the path of a Python >= 3.12: the newest found on PATH, then in pyenv's versions.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
for candidate in python3.14 python3.13 python3.12 python3 python; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if ok "$path"; then echo "$path"; exit 0; fi
done
root="${PYENV_ROOT:-$HOME/.pyenv}"
for path in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -Vr); do
    if ok "$path"; then echo "$path"; exit 0; fi
done
exit 1
