"""The modules of bench/stream.py (run that script; see its docstring)."""
