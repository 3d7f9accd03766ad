"""A link emulator: a TCP relay between cameras and the broker that behaves like a poor
uplink (limited bandwidth, added latency, outages), so backlog, PUBACK latency and the
device's local fallback can be exercised against a real broker.

Bandwidth limits the device-to-broker direction (the camera's uplink); latency and loss
apply to both directions. MQTT runs over TCP, so a lost segment is never lost to MQTT: TCP
sends it again after a retransmission timeout, and everything behind it waits (head-of-line
blocking). The emulator reproduces exactly that: each relayed segment (≤ 1 KB) is lost with
probability ``loss``, arrives ``rto_ms`` late, costs its bandwidth twice, and holds back the
segments after it. ``pause()`` stalls the link without closing it, as a radio losing
coverage would: TCP stays up, nothing moves, the device's backlog grows.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

from devices.broker import free_port

Bandwidth = Callable[[float], float | None]  # s since start -> kbit/s (0: outage, None: no limit)


def constant(kbps: float | None) -> Bandwidth:
    return lambda t: kbps


class LinkEmulator:
    """Listen on ``host:port`` (0: a free port, chosen now) and relay every connection to
    ``upstream``; ``url`` is the broker URL to give the cameras."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        bandwidth: Bandwidth | float | None = None,
        latency_ms: float = 0.0,
        loss: float = 0.0,
        rto_ms: float = 200.0,
        seed: int | None = None,
        stagger_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.bandwidth = bandwidth if callable(bandwidth) else constant(bandwidth)
        self.latency_ms = latency_ms
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss is a probability in [0, 1)")
        self.loss = loss
        self.rto_ms = rto_ms  # Linux's minimum TCP retransmission timeout is 200 ms
        self.segments_lost = 0
        self._random = random.Random(seed)
        self.stagger_s = stagger_s  # connection i sees the trace from i * stagger_s: not in step
        self.connections = 0
        self.offsets: dict[tuple[str, int], float] = {}  # client (host, port) -> trace offset
        self.host, self.port = host, port or free_port(host)
        self.bytes_up = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-emulator", daemon=True)
        self._started_at = time.monotonic()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> LinkEmulator:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("link emulator did not start")
        return self

    def stop(self) -> None:
        """Close the listener and every relayed connection (devices see the link drop)."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.get_running_loop().stop()

    def trace_time(self, client: tuple[str, int] | None, monotonic: float) -> float | None:
        """Where in the bandwidth trace a client's connection was at ``monotonic``."""
        offset = self.offsets.get(client) if client else None
        return None if offset is None else monotonic - self._started_at + offset

    def pause(self) -> None:
        """Coverage lost: bytes stop flowing both ways, connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def __enter__(self) -> LinkEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, self.host, self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        offset = self.connections * self.stagger_s
        self.connections += 1
        self.offsets[writer.get_extra_info("peername")[:2]] = offset
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, offset),
                self._pump(up_reader, writer, None),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio 3.11 logs cancelled connection handlers)
        finally:
            up_writer.close()
            writer.close()

    async def _pace(self, size: int, offset: float) -> None:
        """Take as long as ``size`` bytes need at the current rate; wait out outages (0)."""
        while (kbps := self.bandwidth(time.monotonic() - self._started_at + offset)) == 0:
            await asyncio.sleep(0.1)
        if kbps:
            await asyncio.sleep(size * 8 / 1000 / kbps)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, offset: float | None
    ) -> None:
        """Read, pace to the bandwidth (uplink only: ``offset`` is its time shift in the
        trace), and deliver each chunk ``latency_ms`` later (deliveries pipeline, so latency
        does not cut throughput)."""
        shaped = offset is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while (item := await queue.get()) is not None:
                    at, data = item
                    await asyncio.sleep(max(0.0, at - loop.time()))
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        delivery = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1024 if shaped else 65536):
                while not self._flowing.is_set():
                    await asyncio.sleep(0.05)
                if offset is not None:
                    await self._pace(len(data), offset)
                    self.bytes_up += len(data)
                delay = self.latency_ms / 1000
                if self.loss and self._random.random() < self.loss:
                    self.segments_lost += 1
                    delay += self.rto_ms / 1000  # found missing, sent again
                    if offset is not None:
                        await self._pace(len(data), offset)
                # FIFO delivery: segments behind a late one wait for it, as in TCP.
                queue.put_nowait((loop.time() + delay, data))
        finally:
            queue.put_nowait(None)
            await delivery
