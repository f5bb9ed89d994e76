"""The channel layer over two real redis-servers: a message sent to a process-local channel is
received (core/channel_layers.py), whatever its local part hashes to."""

import asyncio

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.utils import _consistent_hash

from chat.tests import services_process
from core.channel_layers import ShardedRedisChannelLayer

pytestmark = pytest.mark.skipif(
    bool(services_process.missing_tools(postgres=False)), reason="needs redis-server"
)


@pytest.fixture(scope="module")
def two_instances():
    with (
        services_process.redis_server(aof=False) as first,
        services_process.redis_server(aof=False) as second,
    ):
        yield [first.url, second.url]


def test_stock_layer_sends_a_local_channel_elsewhere_than_it_receives(two_instances):
    # Why the subclass exists: the stock layer's send hashes the whole name, receive only the
    # part up to "!", so for about half of the local names they pick different instances.
    layer = RedisChannelLayer(hosts=two_instances)
    names = [f"specific.abc!{n}" for n in range(20)]
    assert any(layer.consistent_hash(n) != layer.consistent_hash("specific.abc!") for n in names)
    ours = ShardedRedisChannelLayer(hosts=two_instances)
    assert {ours.consistent_hash(n) for n in names} == {ours.consistent_hash("specific.abc!")}
    # Groups (no "!") hash as before.
    assert ours.consistent_hash("chat.msg.7") == _consistent_hash("chat.msg.7", 2)


def test_every_message_to_a_local_channel_arrives(two_instances):
    async def run() -> list[int]:
        layer = ShardedRedisChannelLayer(hosts=two_instances, prefix="layer-test")
        # Local channels of one process, until both instances would have been picked by send's
        # old hash: each must arrive all the same.
        channels = [await layer.new_channel("chat") for _ in range(12)]
        stock = RedisChannelLayer(hosts=two_instances)
        assert len({stock.consistent_hash(c) for c in channels}) == 2
        received = []
        for number, channel in enumerate(channels):
            await layer.send(channel, {"type": "probe", "n": number})
            message = await asyncio.wait_for(layer.receive(channel), 10)
            received.append(message["n"])
        await layer.flush()
        return received

    assert asyncio.run(run()) == list(range(12))
