"""The client's IP address, believing ``X-Forwarded-For`` only from a trusted proxy.

A client can send any ``X-Forwarded-For`` it likes; only the entries that a trusted proxy
appended are true. So the address is ``REMOTE_ADDR`` unless that is a trusted proxy
(``TRUSTED_PROXIES``), and then the right-most entry of ``X-Forwarded-For`` that is not a
trusted proxy itself: the address the outermost trusted proxy saw. Used by the login
throttle (django-axes, docs/deploy.md).
"""

import ipaddress

from django.conf import settings


def _address(value: str):
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address, networks) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request) -> str | None:
    """Return the client's address for ``request`` (see the module's docstring)."""
    remote = _address(request.META.get("REMOTE_ADDR", "") or "")
    if remote is None:
        return None
    networks = settings.TRUSTED_PROXIES
    if not _trusted(remote, networks):
        return str(remote)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")):
        address = _address(entry)
        if address is None:
            return str(remote)  # a garbled hop: trust nothing to its left
        if not _trusted(address, networks):
            return str(address)
    return str(remote)
