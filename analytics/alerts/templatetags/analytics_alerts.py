from django import template

from analytics.alerts.alerting import firing_events

register = template.Library()


@register.simple_tag
def firing_alert_events():
    """The alert events firing now, for the admin index and the dashboard."""
    return list(firing_events()[:20])
