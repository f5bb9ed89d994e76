"""What Django's debug page and error emails may show of the settings and the environment.

Django hides a setting whose *name* matches API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE or
HTTP_COOKIE. Credentials also ride inside values: ``REDIS_URL=redis://:password@host``, an
``AI_BASE_URL`` with ``user:password@`` or ``?api-key=``, the cache and channel-layer
locations built from them, ``DATABASE_URL`` in the environment a WSGI server shows as
request.META. This filter also hides settings named ``*_URL`` that are known to carry them, and
scrubs the userinfo and secret-looking query values of every URL in any value it shows.
"""

import re

from django.views.debug import SafeExceptionReporterFilter

_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:key|token|secret|pass|signature|auth|sig)[^=&#\s]*=)[^&#\s]*",
    re.IGNORECASE,
)


def scrub_url_credentials(text: str) -> str:
    """Return ``text`` with every URL's userinfo and secret-looking query values hidden."""
    text = _USERINFO.sub(r"\g<scheme>********@", text)
    return _SECRET_QUERY.sub(r"\g<name>********", text)


class SecretScrubbingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DATABASE_URL|REDIS_URL|EMAIL_URL",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return scrub_url_credentials(str(value))  # str(): lazy strings pass isinstance
        return value
