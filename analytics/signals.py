"""What analytics announces to the apps above it (they listen; analytics imports none of them).

``call_recorded``: an AICall row was stored and its transaction committed. Sent with
``sender=AICall``, ``call`` (the AICall row) and ``started_at`` (when the attempt began, which is
not stored: a quota charges a call to the day that admitted it). The quotas app charges it to the
user's and the global meters (``analytics.quotas.receivers``).
"""

from django.dispatch import Signal

call_recorded = Signal()
