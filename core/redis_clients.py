"""redis-py clients for a Redis URL, honouring the deployment's Sentinel and Cluster settings.

* A plain URL (``redis://host:6379/0``): ``redis.Redis.from_url``.
* With ``REDIS_SENTINELS`` set, the URL's host is the master's *name* (``redis://mymaster/0``):
  a client of whatever the Sentinels name as master now (``Sentinel.master_for``); after a
  failover its next connection goes to the promoted replica.
* ``redis+cluster://host:port`` (or ``rediss+cluster://``): a ``RedisCluster`` client that
  discovers the cluster's nodes from that one and routes each command by its keys' hash slot.
  Only the quota backend accepts one (``QUOTA_REDIS_URL``): channels-redis and Django's cache
  do not speak the Cluster protocol.
"""

from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SENTINEL_SCHEMES = ("redis", "rediss")


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in CLUSTER_SCHEMES


def redis_client(url: str, **options: Any):
    """A synchronous client of the Redis ``url`` names (see the module's docstring)."""
    import redis
    from redis.cluster import RedisCluster
    from redis.sentinel import Sentinel

    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        options.pop("health_check_interval", None)  # per node, not a cluster client option
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    if settings.REDIS_SENTINELS:
        target = sentinel_target(url)
        sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs(options))
        return sentinel.master_for(target.pop("master_name"), **target, **options)
    return redis.Redis.from_url(url, **options)


def async_redis_client(url: str, **options: Any):
    """An asyncio client of the Redis ``url`` names (the health check's)."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import Sentinel

    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    if settings.REDIS_SENTINELS:
        target = sentinel_target(url)
        sentinel = Sentinel(settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs(options))
        return sentinel.master_for(target.pop("master_name"), **target, **options)
    return aioredis.Redis.from_url(url, **options)


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` as redis-py's Sentinel takes it (empty: no Sentinel)."""
    sentinels = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"REDIS_SENTINELS must be host:port[,host:port...], not {value!r}."
            )
        sentinels.append((host, int(port)))
    return sentinels


def sentinel_target(url: str) -> dict:
    """The master name, database and credentials a Redis URL names under Sentinel."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES or not parts.hostname:
        raise ImproperlyConfigured(
            "With REDIS_SENTINELS set, a Redis URL names the master: redis://[:password@]"
            f"MASTER_NAME/DB (a URL with scheme {parts.scheme!r} and no master name is not one)."
        )
    path = parts.path.strip("/")
    target: dict = {"master_name": parts.hostname, "db": int(path) if path.isdigit() else 0}
    if parts.password:
        target["password"] = unquote(parts.password)
    if parts.username:
        target["username"] = unquote(parts.username)
    if parts.scheme == "rediss":
        target["ssl"] = True
    return target


def _sentinel_kwargs(options: dict[str, Any]) -> dict[str, Any]:
    """The time limits of the client also bound each question to a Sentinel."""
    return {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
