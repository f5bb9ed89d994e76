"""Typed environment variables for settings.py: each refuses a bad value at start-up with a
message naming the variable."""

import ipaddress
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()
FLAGS = {"true": True, "1": True, "yes": True, "on": True}
FLAGS |= {"false": False, "0": False, "no": False, "off": False}


# Variables found empty (and so removed) by an earlier read: see read_env_file.
_blanked: set[str] = set()


def read_env_file(default: Path) -> str:
    """Load the file named by ENV_FILE (else ``default``, if it exists) and return its name.

    The process environment wins over the file; an empty value (``DATABASE_URL=`` copied from
    .env.example, or ``SECRET_KEY=`` in the environment) means unset, so the setting's default
    applies, or production refuses to start.
    """
    # Django imports the settings again after a failed import: the file must not fill in now
    # what the environment had emptied then (SECRET_KEY= would pass with the .env's key).
    for key in _blanked:
        os.environ.setdefault(key, "")
    name = os.environ.get("ENV_FILE", str(default))
    if os.path.isfile(name):
        env.read_env(name)  # never overrides variables already set in the environment
    elif "ENV_FILE" in os.environ:
        raise ImproperlyConfigured(f"ENV_FILE names a file that does not exist: {name}")
    for key, value in list(os.environ.items()):
        if value == "" and key.isupper():
            _blanked.add(key)
            del os.environ[key]
    return name


def check(ok: bool, message: str) -> None:
    if not ok:
        raise ImproperlyConfigured(message)


def required(name: str, *, debug: bool, dev_default: str) -> str:
    """Return a variable production cannot run without; development gets a harmless default."""
    value = env.str(name, default="")
    if value:
        return value
    if debug:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. Production (DEBUG off) refuses to start without it; "
        f"set it in the environment or in the file named by ENV_FILE."
    )


def bounded(name: str, default, *, cast=float, at_least=None, above=None, at_most=None):
    """A number read with ``cast`` that must lie in the bounds given; the error names them."""
    raw = env.str(name, default=str(default))
    try:
        value = cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None
    rules = []
    if at_least is not None and at_most is not None:
        rules.append((at_least <= value <= at_most, f"between {at_least} and {at_most}"))
    elif at_least is not None:
        rule = "0 or more" if at_least == 0 else f"at least {at_least}"
        rules.append((value >= at_least, rule))
    if above is not None:
        rules.append((value > above, f"above {above}"))
    for ok, rule in rules:
        check(ok, f"{name} must be {rule}, not {value}.")  # a NaN fails every rule
    return value


def choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.str(name, default=default)
    check(value in choices, f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def positive_int(name: str, default: int) -> int:
    raw = env.str(name, default=str(default))
    check(
        raw.isdigit() and int(raw) >= 1,
        f"{name} must be a whole number of at least 1, not {raw!r}.",
    )
    return int(raw)


def seconds(name: str, default: float) -> float:
    """A duration of 0 or more seconds (an unset variable takes ``default``)."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from exc
    check(value >= 0, f"{name} must be 0 or more seconds, not {raw!r}")  # also refuses nan
    return value


def limit(name: str, default, cast=int):
    """A limit: a number, or ``none`` for no limit (an unset variable takes ``default``)."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.lower() in {"none", "off", "unlimited"}:
        return None
    try:
        value = cast(raw)
    except (ValueError, ArithmeticError) as exc:
        raise ImproperlyConfigured(f"{name} must be a number or 'none', not {raw!r}") from exc
    check(value >= 0, f"{name} must not be negative, not {raw!r}")
    return value


def strict_bool(name: str, default: bool) -> bool:
    """A flag that refuses anything but true/false (and 1/0, yes/no, on/off)."""
    raw = env.str(name, default=str(default)).lower()
    check(raw in FLAGS, f"{name} must be true or false, not {raw!r}")
    return FLAGS[raw]


def networks(name: str) -> tuple:
    """Addresses or CIDR ranges (a bare address is a /32 or /128)."""
    try:
        return tuple(
            ipaddress.ip_network(value.strip(), strict=False)
            for value in env.list(name, default=[])
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must list IP addresses or CIDR ranges: {exc}") from exc


def time_zone(name: str, default: str) -> str:
    value = env.str(name, default=default)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is not a time zone name: {value!r}") from exc
    return value


def host_port(name: str) -> str:
    """``host:port`` or empty (unset)."""
    value = env.str(name, default="")
    if value:
        host, _, port = value.rpartition(":")
        check(
            bool(host) and port.isdigit() and 0 < int(port) < 65536,
            f"{name} must be host:port, e.g. 0.0.0.0:9101, not {value!r}.",
        )
    return value


def mailers(name: str, default: str) -> dict:
    """Django's MAILERS from one URL, e.g. smtp+tls://user:password@smtp.example.com:587."""
    email = env.email_url(name, default=default)
    options = {
        "host": email.get("EMAIL_HOST"),
        "port": email.get("EMAIL_PORT"),
        "username": email.get("EMAIL_HOST_USER"),
        "password": email.get("EMAIL_HOST_PASSWORD"),
        "use_tls": email.get("EMAIL_USE_TLS"),
        "use_ssl": email.get("EMAIL_USE_SSL"),
    }
    smtp = email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
    return {
        "default": {
            "BACKEND": email["EMAIL_BACKEND"],
            "OPTIONS": {k: v for k, v in options.items() if v not in (None, "")} if smtp else {},
        }
    }
