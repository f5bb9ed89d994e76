"""Parts of bench/capacity.py."""
