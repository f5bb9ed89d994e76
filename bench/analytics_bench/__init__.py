"""The modules of bench/analytics.py (run that script; see its docstring)."""
