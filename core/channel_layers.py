"""channels-redis' layer, with process-local channels routed the same way on send and receive.

With several hosts (``CHANNEL_REDIS_URLS``) ``RedisChannelLayer.send`` picks the instance of a
process-local channel (``specific.<id>!<local part>``) by hashing the *whole* name, while
``receive`` (and ``group_send``) hash only its non-local part, ``specific.<id>!``: a message sent
directly to such a channel (the chat's stop and watch requests to a runner's control channel)
lands on an instance nobody reads, unless both hashes happen to agree (channels-redis 4.3.0;
reported as django/channels#1492). With one host there is nothing to choose.
"""

from channels_redis.core import RedisChannelLayer


class ShardedRedisChannelLayer(RedisChannelLayer):
    def consistent_hash(self, value):
        # Group names cannot hold "!"; a channel name holds it once, after its non-local part.
        marker = b"!" if isinstance(value, bytes) else "!"
        if marker in value:
            value = value[: value.index(marker) + 1]
        return super().consistent_hash(value)
