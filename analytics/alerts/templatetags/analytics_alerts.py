from django import template

from analytics.alerts.alerting import firing_events
from analytics.alerts.notify import calls_url

register = template.Library()


@register.simple_tag
def firing_alert_events():
    """The alert events firing now, for the admin index and the dashboard."""
    return list(firing_events()[:20])


@register.filter
def alert_calls_url(event) -> str:
    """The AI calls admin list filtered to the calls behind ``event``."""
    return calls_url(event, absolute=False)
