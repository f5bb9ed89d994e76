"""Where an alert webhook may point: public internet addresses only (docs/deploy.md).

A webhook URL is typed by staff and fetched by the server, so without a check it could reach
the server's own network: the cloud metadata service (169.254.169.254), a database port on
localhost, a private admin page (blind server-side request forgery). The host is resolved and
every address it resolves to must be public: never loopback, private, link-local, multicast,
reserved, shared (CGNAT) or unspecified. The check runs when a channel is saved and again for
every connection at send time, on the very addresses that connection then uses, so a name
that resolves to a private address later (DNS rebinding) or a redirect to one is refused too.
``ALERT_WEBHOOK_ALLOW_PRIVATE=true`` lifts the rule, for on-premises receivers.
"""

import http.client
import ipaddress
import socket
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeWebhookAddress(Exception):
    """A webhook URL whose host is, or resolves to, an address webhooks may not reach.

    Deliberately not an OSError: urllib would wrap it as a connection failure to retry.
    """


def refused_kind(address: str) -> str | None:
    """Return what kind of non-public address ``address`` is ("loopback", ...), or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-public"  # e.g. 100.64.0.0/10, shared address space
    return None


def resolve(host: str, port: int) -> list[tuple]:
    """Return ``getaddrinfo`` results for ``host``; raise UnsafeWebhookAddress for any
    address a webhook may not reach (unless ALERT_WEBHOOK_ALLOW_PRIVATE)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeWebhookAddress(f"The host {host!r} cannot be resolved.") from exc
    if not settings.ALERT_WEBHOOK_ALLOW_PRIVATE:
        for *_, sockaddr in infos:
            kind = refused_kind(str(sockaddr[0]))
            if kind:
                raise UnsafeWebhookAddress(
                    f"The host {host!r} is a {kind} address ({sockaddr[0]}); webhooks may only "
                    "reach public addresses (ALERT_WEBHOOK_ALLOW_PRIVATE=true allows others)."
                )
    return infos


def check_url(url: str) -> None:
    """Raise UnsafeWebhookAddress unless ``url`` is http(s) to a host webhooks may reach."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookAddress("A webhook URL must be http:// or https:// with a host.")
    resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def _connect_checked(
    address,
    timeout=socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]  # create_connection's own default
    source_address=None,
):
    """``socket.create_connection`` that connects only to addresses ``resolve`` allowed."""
    host, port = address
    last_error: OSError | None = None
    for family, type_, proto, _, sockaddr in resolve(host, port):
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    raise last_error or OSError(f"no address to connect to for {host!r}")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_checked


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_checked  # TLS then wraps it, for the host name


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_CheckedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]  # set by HTTPSHandler


# No proxy from the environment: through a proxy, the proxy (not this check) would pick the
# address. Redirects are followed as urllib does, each new connection checked again.
_opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), _CheckedHTTPHandler, _CheckedHTTPSHandler
)


def open_checked(request: urllib.request.Request, *, timeout: float):
    """``urlopen`` whose every connection goes to an address webhooks may reach."""
    return _opener.open(request, timeout=timeout)
