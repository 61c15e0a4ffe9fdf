"""The shared, pipelined Redis connection: replies reach their callers, in order, through
errors, cancellations, a silent server and a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from l1.stack import ServerProcess, free_port, redis_server
from l1.wiring import connect_redis
from tests.conftest import Servers

ECHO = "return {KEYS[1], ARGV[1]}"


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[Redis]:
    client = connect_redis(servers.redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


async def test_concurrent_commands_each_get_their_own_reply(redis: Redis) -> None:
    await redis.mset({f"key:{n}": n for n in range(300)})
    replies = await asyncio.gather(*(redis.get(f"key:{n}") for n in range(300)))
    assert replies == [str(n).encode() for n in range(300)]


async def test_replies_come_back_as_redis_py_gives_them(redis: Redis) -> None:
    assert await redis.set("plain", b"x", nx=True) is True
    assert await redis.set("plain", b"y", nx=True) is None
    assert await redis.zadd("scores", {"a": 1.5, "b": 2}) == 2
    assert await redis.zrange("scores", 0, -1, withscores=True) == [[b"a", 1.5], [b"b", 2.0]]
    assert await redis.smismember("none", ["a", "b"]) == [0, 0]
    assert await redis.mget(["plain", "absent"]) == [b"x", None]


async def test_a_refused_command_raises_and_the_next_one_is_answered(redis: Redis) -> None:
    await redis.set("text", b"x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await redis.lpush("text", 1)
    assert await redis.get("text") == b"x"


async def test_a_transaction_runs_whole_or_names_the_command_refused(redis: Redis) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("counter", 1)
        pipe.incr("counter")
        pipe.zadd("scores", {"a": 1}, nx=True)
        assert await pipe.execute() == [True, 2, 1]
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("counter", 10)
        pipe.lpush("counter", 1)  # runs, and fails on the string just set
        with pytest.raises(ResponseError, match=r"Command # 2 \(LPUSH counter 1\)"):
            await pipe.execute()
    assert await redis.get("counter") == b"10"


async def _echo_in_a_pipeline(redis: Redis, echo: AsyncScript) -> list[object]:
    async with redis.pipeline(transaction=False) as pipe:
        await echo(keys=["k"], args=["v"], client=pipe)
        pipe.get("absent")
        return await pipe.execute()


async def test_a_script_flushed_from_under_a_pipeline_is_loaded_for_the_next(
    redis: Redis,
) -> None:
    echo = redis.register_script(ECHO)
    assert await _echo_in_a_pipeline(redis, echo) == [[b"k", b"v"], None]
    await redis.script_flush()
    # Not run again here: the pipeline's other commands have run. The caller's retry is.
    with pytest.raises(NoScriptError):
        await _echo_in_a_pipeline(redis, echo)
    assert await _echo_in_a_pipeline(redis, echo) == [[b"k", b"v"], None]
    await redis.script_flush()
    assert await echo(keys=["k"], args=["w"]) == [b"k", b"w"]  # redis-py loads it itself


async def test_a_caller_that_gives_up_leaves_the_order_of_replies_intact(redis: Redis) -> None:
    await redis.set("a", b"1")
    await redis.set("b", b"2")
    given_up = asyncio.ensure_future(redis.get("a"))
    kept = asyncio.ensure_future(redis.get("b"))
    given_up.cancel()
    assert await kept == b"2"
    assert await redis.get("a") == b"1"


async def test_a_silent_server_times_out_and_the_link_is_made_again(servers: Servers) -> None:
    assert servers.redis_url is not None
    url = servers.redis_url
    quick = connect_redis(url, reply_timeout=0.3)
    other = Redis.from_url(url)
    try:
        await quick.set("k", b"v")
        await other.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")  # reads go on
        with pytest.raises(RedisTimeoutError):  # after its retries
            await asyncio.wait_for(quick.set("k", b"w"), timeout=30)
        await other.execute_command("CLIENT", "UNPAUSE")
        assert await quick.get("k") in (b"v", b"w")  # the last try may have gone through
    finally:
        await other.execute_command("CLIENT", "UNPAUSE")
        await quick.aclose()
        await other.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ServerProcess]:
    server = redis_server(port=free_port(), data_dir=tmp_path / "redis", log_path=tmp_path / "log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_calls_go_on_once_a_restarted_server_is_back(own_redis: ServerProcess) -> None:
    redis = connect_redis(f"redis://127.0.0.1:{own_redis.port}/3")
    echo = redis.register_script(ECHO)
    try:
        assert await echo(keys=["k"], args=["v"]) == [b"k", b"v"]
        await asyncio.to_thread(own_redis.stop)
        with pytest.raises(ConnectionError):
            await redis.get("k")  # retried, with nothing to reach
        await asyncio.to_thread(own_redis.start)
        async with redis.pipeline(transaction=False) as pipe:
            await echo(keys=["k"], args=["again"], client=pipe)  # the new server lacks it
            assert await pipe.execute() == [[b"k", b"again"]]
        assert await redis.client_info() is not None
        assert (await redis.client_info())["db"] == 3
    finally:
        await redis.aclose()
