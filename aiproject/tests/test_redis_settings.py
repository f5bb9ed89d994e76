"""The channel layer's and the cache's Redis configuration (aiproject/settings_redis.py) and the
Sentinel URL parsing (core/redis_clients.py): pure functions, no Redis."""

import pytest
from channels_redis.core import RedisChannelLayer
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.sentinel import SentinelConnectionPool

from aiproject.settings_redis import caches, channel_layers
from core.redis_clients import is_cluster_url, parse_sentinels, sentinel_target

URLS = ["redis://redis-a:6379/0", "redis://redis-b:6379/0", "redis://redis-c:6379/0"]
SENTINELS = [("sentinel-1", 26379), ("sentinel-2", 26379)]


def test_the_layer_spreads_over_every_listed_instance():
    layers = channel_layers(urls=URLS, sentinels=[], prefix="p")
    # channels-redis' layer with local channels routed alike on send and receive.
    assert layers["default"]["BACKEND"] == "core.channel_layers.ShardedRedisChannelLayer"
    config = layers["default"]["CONFIG"]
    assert [host["address"] for host in config["hosts"]] == URLS
    layer = RedisChannelLayer(**config)
    assert layer.ring_size == 3
    # Groups hash over all three (channels-redis's CRC32 ring).
    assert {layer.consistent_hash(f"chat.msg.{n}") for n in range(30)} == {0, 1, 2}


def test_no_url_is_the_in_memory_layer_and_local_cache():
    assert channel_layers(urls=[], sentinels=[], prefix="p")["default"]["BACKEND"] == (
        "channels.layers.InMemoryChannelLayer"
    )
    assert caches(url="", sentinels=[], prefix="p")["default"]["BACKEND"].endswith("LocMemCache")


def test_under_sentinel_a_url_names_the_master_its_database_and_password():
    assert sentinel_target("redis://:s3cret@mymaster/2") == {
        "master_name": "mymaster",
        "db": 2,
        "password": "s3cret",
    }
    assert sentinel_target("rediss://user:pw@other")["ssl"] is True
    urls = ["redis://mymaster/0", "redis://:pw@other-master/1"]
    config = channel_layers(urls=urls, sentinels=SENTINELS, prefix="p")
    layer = RedisChannelLayer(**config["default"]["CONFIG"])
    pools = [layer.create_pool(0), layer.create_pool(1)]
    assert all(isinstance(pool, SentinelConnectionPool) for pool in pools)
    assert [pool.service_name for pool in pools] == ["mymaster", "other-master"]
    assert pools[1].connection_kwargs["password"] == "pw"
    assert pools[1].connection_kwargs["db"] == 1
    options = caches(url="redis://mymaster/0", sentinels=SENTINELS, prefix="p")["default"]
    assert options["OPTIONS"]["service_name"] == "mymaster"


@pytest.mark.parametrize("value", ["sentinel-1", "host:port", ":26379"])
def test_a_bad_sentinel_list_is_refused(value):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS must be host:port"):
        parse_sentinels(value)


def test_sentinel_list_and_cluster_urls():
    assert parse_sentinels(" s1:26379, s2:26380 ,") == [("s1", 26379), ("s2", 26380)]
    assert parse_sentinels("") == []
    assert is_cluster_url("redis+cluster://node:6379") and not is_cluster_url(URLS[0])
    with pytest.raises(ImproperlyConfigured, match="names the master"):
        sentinel_target("unix:///run/redis.sock")
