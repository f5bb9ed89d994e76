"""The channel layer's and the cache's Redis configuration, from the settings' Redis variables.

Pure functions of the values ``settings.py`` read (docs/deploy.md "Redis at scale"):

* ``CHANNEL_REDIS_URLS``: the channel layer spread over several Redis instances (channels-redis
  hashes each channel and group to one of them);
* ``REDIS_SENTINELS``: every Redis URL's host is then the *master name* that these Sentinels
  monitor (``redis://:password@mymaster/0``), and clients ask them where the master is now.
"""

from core.redis_clients import sentinel_target

# redis-py's 5 s socket timeout races the layer's 5 s blocking pop; its pool's 100 connections
# are too few (each cross-process stream and publisher holds one).
LAYER_CONNECTION = {"socket_timeout": 15, "max_connections": 1000}


def layer_hosts(urls: list[str], sentinels: list[tuple[str, int]]) -> list[dict]:
    """channels-redis ``hosts``: one entry per instance (through Sentinel when there are some)."""
    if not sentinels:
        return [{"address": url, **LAYER_CONNECTION} for url in urls]
    return [{**sentinel_target(url), "sentinels": sentinels, **LAYER_CONNECTION} for url in urls]


def channel_layers(*, urls: list[str], sentinels: list[tuple[str, int]], prefix: str) -> dict:
    if not urls:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return {
        "default": {
            "BACKEND": "core.channel_layers.ShardedRedisChannelLayer",
            "CONFIG": {
                "hosts": layer_hosts(urls, sentinels),
                "prefix": prefix,
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }


def caches(*, url: str, sentinels: list[tuple[str, int]], prefix: str) -> dict:
    if not url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache: dict = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": prefix,
    }
    if sentinels:
        from redis.sentinel import Sentinel

        target = sentinel_target(url)
        # Django's client builds its pool with ``pool_class.from_url(LOCATION, **OPTIONS)``: a
        # Sentinel pool connects to whatever the Sentinels name as master (the URL's host is
        # only the master's name).
        cache["OPTIONS"] = {
            "pool_class": "redis.sentinel.SentinelConnectionPool",
            "service_name": target["master_name"],
            "sentinel_manager": Sentinel(sentinels),
        }
    return {"default": cache}
