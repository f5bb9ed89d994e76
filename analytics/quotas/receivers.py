"""The quotas' side of what analytics announces (connected in ``QuotasConfig.ready``)."""

from .checks import charge


def charge_recorded_call(sender, *, call, started_at, **kwargs) -> None:
    """Charge a recorded (committed) AICall to its user's meters and the global one."""
    charge(
        user_id=call.user_id,
        started_at=started_at,
        recorded_at=call.created_at,
        tokens=call.total_tokens,
        cost_usd=call.cost_usd,
    )
