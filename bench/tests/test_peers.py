"""bench/stream.py's floor peer: daphne serving bench/stream_bench/floor_app.py in front of a
real simulator forwards every token of every stream, and the round measures its process."""

import asyncio

from bench.stream_bench.peers import run_floor, versus_direct
from bench.stream_bench.rounds import direct_round
from devtools.simulator_process import run_simulator


def test_the_floor_forwards_every_token_and_its_cpu_is_read(tmp_path):
    with (
        run_simulator("--ttft-ms", "50", "--tps", "400", "--reply-tokens", "40") as simulator,
        run_floor(simulator.base_url, tmp_path) as floor,
    ):

        async def rounds():
            direct = await direct_round(simulator.base_url, simulator.pid, 3)
            return direct, await direct_round(floor.base_url, floor.pid, 3)

        direct, through = asyncio.run(rounds())
    assert direct["held"] == 3 and direct["tokens_match_usage"] == 3
    assert through["errors"] == []
    assert through["held"] == 3 and through["tokens_match_usage"] == 3
    # The same replies (the simulator's are deterministic), token for token.
    assert sorted(s.text for s in through["streams"]) == sorted(s.text for s in direct["streams"])
    assert all(len(s.arrivals) > 10 for s in through["streams"])  # streamed, not in one piece
    added = versus_direct(direct, through)
    assert added["held"] == 3
    assert added["cpu_s_per_reply"] is not None and added["cpu_s_per_reply"] > 0
