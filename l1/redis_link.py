"""One connection to Redis that carries every command of a process, pipelined.

redis-py's asyncio client takes a connection from its pool for each command, sends the
command and waits on the reply before the connection goes back: about 70 µs of CPU per
command on a 2-core machine, and the run path makes several per run. Here every command
is packed by hiredis and queued on one shared connection, the commands of one turn of
the event loop written in one system call, and the replies, which Redis sends in the
order it was asked, are read by hiredis and handed back in that order: about 12 µs.

:class:`MultiplexedRedis` is redis-py's ``Redis`` with its commands, scripts and
pipelines sent this way, so callers keep redis-py's vocabulary and replies. Publish and
subscribe, which take a connection over, keep connections of their own from the pool.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import hiredis
from redis._parsers import BaseParser
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import parse_url
from redis.exceptions import (
    ConnectionError,
    ExecAbortError,
    InvalidResponse,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from redis.asyncio.retry import Retry
    from redis.typing import EncodableT

__all__ = ["PROTOCOL", "MultiplexedRedis"]

# Options redis-py's commands pass along with their arguments (redis.client's names).
EMPTY_RESPONSE = "EMPTY_RESPONSE"
NEVER_DECODE = "NEVER_DECODE"
# The replies are RESP3's, for which the pool's clients and the callbacks are set up too.
PROTOCOL = 3

Command = Sequence[Any]  # a command and its arguments, as redis-py queues them


def _pack(commands: Iterable[Command]) -> bytes:
    packed = []
    for args in commands:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD" and the like
            args = (*args[0].split(), *args[1:])
        packed.append(hiredis.pack_command(tuple(args)))  # type: ignore[arg-type]
    return b"".join(packed)


class _Request:
    __slots__ = ("deadline", "future", "replies", "wanted")

    def __init__(self, future: asyncio.Future[list[Any]], wanted: int, deadline: float) -> None:
        self.future = future
        self.wanted = wanted
        self.deadline = deadline
        self.replies: list[Any] = []


class _Link(asyncio.Protocol):
    """One connection: requests written in turn, replies handed out in the same turn.

    A request left without its replies for ``timeout`` seconds closes the connection
    and fails every request on it, as does the connection breaking.
    """

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self._pending: deque[_Request] = deque()
        self._unsent: list[bytes] = []  # written together once the loop comes round
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def open(self) -> bool:
        """Whether requests can still be sent."""
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while (reply := self._reader.gets()) is not False:
            if not pending:  # a reply nobody asked for: the two sides disagree
                self._abort(InvalidResponse("unexpected reply from Redis"))
                return
            request = pending[0]
            request.replies.append(reply)
            if len(request.replies) == request.wanted:
                pending.popleft()
                if not request.future.done():  # its caller may have given up
                    request.future.set_result(request.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def send(self, packed: bytes, wanted: int) -> asyncio.Future[list[Any]]:
        """Write ``packed`` (``wanted`` commands); the future gets their replies."""
        if self._transport is None:
            raise ConnectionError("connection to Redis closed")
        future = self._loop.create_future()
        self._pending.append(_Request(future, wanted, self._loop.time() + self._timeout))
        if not self._unsent:
            self._loop.call_soon(self._write)
        self._unsent.append(packed)
        if self._timer is None:
            self._timer = self._loop.call_at(self._pending[0].deadline, self._expire)
        return future

    def _write(self) -> None:
        # One system call for what every task asked in this turn of the loop.
        unsent, self._unsent = self._unsent, []
        if self._transport is not None:
            self._transport.write(b"".join(unsent))

    def close(self) -> None:
        """Close the connection, failing what is still waiting."""
        if self._transport is not None:
            self._transport.close()
        self._fail(ConnectionError("connection to Redis closed"))

    def _expire(self) -> None:
        self._timer = None
        if not self._pending:
            return
        if self._pending[0].deadline <= self._loop.time():
            self._abort(RedisTimeoutError(f"no reply from Redis in {self._timeout} s"))
            return
        self._timer = self._loop.call_at(self._pending[0].deadline, self._expire)

    def _abort(self, error: Exception) -> None:
        transport = self._transport
        self._fail(error)
        if transport is not None:
            transport.abort()

    def _fail(self, error: Exception) -> None:
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            future = self._pending.popleft().future
            if not future.done():
                future.set_exception(error)


class MultiplexedRedis(Redis):
    """redis-py's client, its commands sent on one shared, pipelined connection."""

    def __init__(
        self,
        url: str,
        *,
        retry: Retry,
        timeout: float,
        connect_timeout: float,
        pool: BlockingConnectionPool,
    ) -> None:
        super().__init__(connection_pool=pool)
        assert pool.connection_kwargs.get("protocol") == PROTOCOL, "the pool must speak RESP3"
        self.auto_close_connection_pool = True
        self._address = parse_url(url)
        self._retry = retry
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._loaded: set[str] = set()  # scripts known to this connection's server

    async def execute_command(self, *args: EncodableT, **options: Any) -> Any:
        """Send one command and return its reply as redis-py would."""
        [reply] = await self._call(_pack([args]), 1)
        if isinstance(reply, ResponseError):
            if EMPTY_RESPONSE in options:
                return options[EMPTY_RESPONSE]
            raise reply
        return self._parsed(args[0], reply, options)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        """A pipeline sent in one write (``MULTI`` … ``EXEC`` around it if ``transaction``)."""
        return _Pipeline(self, transaction)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the shared connection and the pool's."""
        if self._link is not None:
            self._link.close()
        await super().aclose(close_connection_pool)

    async def _call(self, packed: bytes, wanted: int) -> list[Any]:
        link = self._link
        if link is not None and link.open:  # the usual case, spared the retry's set-up
            try:
                return await link.send(packed, wanted)
            except (ConnectionError, RedisTimeoutError):
                pass
        return await self._retry.call_with_retry(lambda: self._send(packed, wanted), _closed)

    async def _send(self, packed: bytes, wanted: int) -> list[Any]:
        link = await self._connected()
        return await link.send(packed, wanted)

    async def _connected(self) -> _Link:
        async with self._connecting:
            if self._link is None or not self._link.open:
                self._link = await self._connect()
                self._loaded.clear()  # a new connection may be to a restarted server
            return self._link

    async def _connect(self) -> _Link:
        address, loop = self._address, asyncio.get_running_loop()
        link = _Link(self._timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                if "path" in address:
                    await loop.create_unix_connection(lambda: link, address["path"])
                else:
                    host, port = address.get("host", "localhost"), address.get("port", 6379)
                    secure = ssl.create_default_context() if _is_tls(address) else None
                    await loop.create_connection(lambda: link, host, port, ssl=secure)
        except (OSError, TimeoutError) as error:
            raise ConnectionError(f"cannot connect to Redis: {error}") from error
        greeting = self._greeting()
        for reply in await link.send(_pack(greeting), len(greeting)):
            if isinstance(reply, ResponseError):
                link.close()
                raise reply
        return link

    def _greeting(self) -> list[Command]:
        address = self._address
        hello: list[EncodableT] = ["HELLO", PROTOCOL]
        if "password" in address:
            hello += ["AUTH", address.get("username") or "default", address["password"]]
        return [hello, ("SELECT", address.get("db", 0))]

    def _parsed(self, command: EncodableT, reply: Any, options: dict[str, Any]) -> Any:
        callback = self.response_callbacks.get(command)  # type: ignore[arg-type]
        if callback is None:
            return reply
        for option in (EMPTY_RESPONSE, NEVER_DECODE, "keys"):
            options.pop(option, None)
        return callback(reply, **options)

    async def _load(self, scripts: Iterable[Any]) -> None:
        """Load the scripts a pipeline runs that this connection's server may lack."""
        missing = [s for s in scripts if s.sha not in self._loaded]
        if missing:
            loads = [("SCRIPT LOAD", script.script) for script in missing]
            replies = await self._call(_pack(loads), len(loads))
            for script, sha in zip(missing, replies, strict=True):
                if isinstance(sha, ResponseError):
                    raise sha
                script.sha = sha.decode()
                self._loaded.add(script.sha)

    async def _pipelined(
        self,
        stack: Sequence[tuple[Command, Mapping[str, Any]]],
        *,
        transaction: bool,
        raise_on_error: bool,
    ) -> list[Any]:
        commands = [args for args, _ in stack]
        if transaction:
            replies = await self._call(_pack([("MULTI",), *commands, ("EXEC",)]), len(commands) + 2)
            results = replies[-1]
            if isinstance(results, ExecAbortError):  # a command was refused as queued
                raise next(r for r in replies[1:-1] if isinstance(r, ResponseError)) from results
            if isinstance(results, ResponseError):
                raise results
        else:
            results = await self._call(_pack(commands), len(commands))
        if any(isinstance(r, NoScriptError) for r in results):
            self._loaded.clear()  # the server forgot them (flushed or restarted)
        outcome = []
        for number, ((args, options), result) in enumerate(zip(stack, results, strict=True), 1):
            if isinstance(result, ResponseError):
                if EMPTY_RESPONSE in options:
                    result = options[EMPTY_RESPONSE]
                elif raise_on_error:
                    _annotate(result, number, args)
                    raise result
            else:
                result = self._parsed(args[0], result, dict(options))
            outcome.append(result)
        return outcome


class _Pipeline(Pipeline):
    """redis-py's pipeline, executed on the client's shared connection."""

    def __init__(self, client: MultiplexedRedis, transaction: bool) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, None)
        self._client = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands in one write and return their replies."""
        stack, scripts = self.command_stack, self.scripts
        await self.reset()
        if not stack:
            return []
        await self._client._load(scripts)
        return await self._client._pipelined(
            stack, transaction=self.is_transaction, raise_on_error=raise_on_error
        )


async def _closed(error: Exception) -> None:
    """Nothing to clean up after a failure: a link that failed has closed itself."""


def _annotate(error: Exception, number: int, args: Command) -> None:
    command = " ".join(str(a) for a in args)[:100]
    error.args = (f"Command # {number} ({command}) of pipeline caused error: {error.args}",)


def _is_tls(address: Mapping[str, Any]) -> bool:
    return getattr(address.get("connection_class"), "__name__", "") == "SSLConnection"
