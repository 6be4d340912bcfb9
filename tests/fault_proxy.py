"""A TCP proxy in front of Redis that can lose one reply, as a reconnect would.

``LosingProxy`` forwards bytes both ways. Armed with a trigger, it lets the
first client chunk containing the trigger through to the server, so the
server runs the command, and then closes that connection instead of
forwarding the reply. The client sees a dropped connection after the fact;
whatever it does next (reconnect and send again) reaches the server normally.
"""

from __future__ import annotations

import asyncio
import contextlib


class LosingProxy:
    def __init__(self, target_host: str, target_port: int, trigger: bytes) -> None:
        self.target = (target_host, target_port)
        self.trigger = trigger
        self.armed = True
        self.lost_replies = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> LosingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        s_reader, s_writer = await asyncio.open_connection(*self.target)
        lose_next_reply = asyncio.Event()

        async def upstream() -> None:
            while data := await c_reader.read(65536):
                if self.armed and self.trigger in data:
                    self.armed = False
                    lose_next_reply.set()
                s_writer.write(data)
                await s_writer.drain()

        async def downstream() -> None:
            while data := await s_reader.read(65536):
                if lose_next_reply.is_set():
                    self.lost_replies += 1
                    return  # the server ran it; the client never hears
                c_writer.write(data)
                await c_writer.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(pumps)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
            self._tasks.discard(task)
        for writer in (c_writer, s_writer):
            writer.close()
