"""A real DNS server on loopback for the tests and ``crawl bench dns``: dnslib on asyncio.

Listens on 127.0.0.1:<port>, UDP and TCP, in a thread of its own (its own
event loop), and answers from a zone made of names:

- ``h<i>.test`` for i < ``hosts``: A 127.0.0.<2 + i % 250>, no AAAA (NOERROR, no data);
- ``six.test``: AAAA ::1 and A 127.0.0.9; ``ttl<n>-<tag>.test``: A 127.0.0.2 with TTL n;
- ``nx*.test`` and anything unknown: NXDOMAIN; ``servfail*.test``: SERVFAIL;
- ``silent*.test``: never answered; ``slow*.test``: A 127.0.0.2 after 200 ms.

Delays are timers on the server's loop, not threads, so thousands of slow
queries can be in flight at once. The server logs every query, and counts the
most it ever had in flight (received, not yet answered or dropped).

``python -m crawler.bench.dnsserver HOSTS`` serves from a process of its own
(the benchmark's): it prints its ``ip:port``, serves until its standard input
closes, then prints the count of queries it answered as JSON.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

SLOW_SECONDS = 0.2
DEFAULT_TTL = 300
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024
_TTL_NAME = re.compile(r"^ttl(\d+)-")


@dataclass
class QueryLog:
    """Every query the server received: (name, type, protocol), and in-flight counts.

    In flight counts questions, (name, type), not packets: a resolver that
    sends a question again after its timeout while the first is unanswered
    (c-ares does, on a loaded machine) asks nothing new."""

    queries: list[tuple[str, str, str]] = field(default_factory=list)
    pending: Counter[tuple[str, str]] = field(default_factory=Counter)
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def in_flight(self) -> int:
        """Distinct questions the server is still answering."""
        return len(self.pending)

    def names(self) -> Counter[str]:
        """How many times each name was asked (any type)."""
        with self.lock:
            return Counter(name for name, _, _ in self.queries)

    def asked(self, name: str, qtype: str | None = None) -> int:
        with self.lock:
            return sum(1 for n, t, _ in self.queries if n == name and qtype in (None, t))

    def clear(self) -> None:
        with self.lock:
            self.queries.clear()
            self.most_in_flight = self.in_flight


class Zone:
    """What each name answers; see the module's docstring."""

    def __init__(self, hosts: int) -> None:
        self.hosts = hosts

    def answer(self, request: DNSRecord) -> tuple[DNSRecord | None, float]:
        """(reply or None for no answer at all, seconds to wait before sending it)."""
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        label = name.removesuffix(".test")
        if not name.endswith(".test") or label.startswith("nx"):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply, 0.0
        if label.startswith("servfail"):
            reply.header.rcode = RCODE.SERVFAIL
            return reply, 0.0
        if label.startswith("silent"):
            return None, 0.0
        delay = SLOW_SECONDS if label.startswith("slow") else 0.0
        ttl = DEFAULT_TTL
        address: str | None = None
        if label.startswith("h") and label[1:].isdigit() and int(label[1:]) < self.hosts:
            address = f"127.0.0.{2 + int(label[1:]) % 250}"
        elif label.startswith("slow") or label == "six":
            address = "127.0.0.9" if label == "six" else "127.0.0.2"
        elif (match := _TTL_NAME.match(label)) is not None:
            ttl, address = int(match[1]), "127.0.0.2"
        if address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype == "A":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=ttl))
        elif qtype == "AAAA" and label == "six":
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA("::1"), ttl=ttl))
        return reply, delay


    def fast_answer(self, data: bytes) -> tuple[str, str, bytes] | None:
        """(name, type, reply) for an A or AAAA query of an h<i>.test name, built by hand.

        dnslib takes ~175 us a query to parse and pack; this ~10 us, so that the
        benchmark measures the resolver, not this server. None: ask dnslib.
        """
        if len(data) < 17 or data[4:6] != b"\x00\x01":
            return None
        pos, labels = 12, []
        while pos < len(data) and data[pos]:
            size = data[pos]
            if size & 0xC0:
                return None
            labels.append(data[pos + 1:pos + 1 + size])
            pos += 1 + size
        if pos + 5 > len(data):
            return None
        qtype, qclass = struct.unpack_from("!HH", data, pos + 1)
        name = b".".join(labels).decode("ascii", "replace").lower()
        label = name.removesuffix(".test")
        if qclass != 1 or qtype not in (1, 28) or not name.endswith(".test") or \
                not (label.startswith("h") and label[1:].isdigit()) or \
                int(label[1:]) >= self.hosts:
            return None
        recursion = data[2] & 0x01  # RD, copied
        flags = 0x8400 | (recursion << 8) | 0x80  # QR, AA, RD?, RA; NOERROR
        answers = 1 if qtype == 1 else 0
        reply = data[:2] + struct.pack("!HHHHH", flags, 1, answers, 0, 0) + data[12:pos + 5]
        if answers:
            address = socket.inet_aton(f"127.0.0.{2 + int(label[1:]) % 250}")
            reply += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, DEFAULT_TTL, 4) + address
        return name, "A" if qtype == 1 else "AAAA", reply


class DNSServer:
    """The zone served on 127.0.0.1:``port`` over UDP and TCP, from a thread.

    Use as a context manager; ``address`` is ``127.0.0.1:<port>`` for ``dns_servers``.
    """

    def __init__(self, hosts: int = 10_000, port: int = 0) -> None:
        self.zone = Zone(hosts)
        self.log = QueryLog()
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DNSServer:
        self._thread = threading.Thread(target=self._run, name="dns-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the test DNS server did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to __enter__ if it happens while starting
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = self
        # TCP first on a free port, then UDP on the same number: both must be free.
        tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", self.port)
        self.port = tcp.sockets[0].getsockname()[1]

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                def send(reply: bytes) -> None:
                    self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

                server._handle(data, "udp", send)

        udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp_socket.bind(("127.0.0.1", self.port))
        _large_receive_buffer(udp_socket)
        udp, _ = await self._loop.create_datagram_endpoint(Udp, sock=udp_socket)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            udp.close()
            tcp.close()

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        def send(reply: bytes) -> None:
            if not writer.is_closing():
                writer.write(struct.pack("!H", len(reply)) + reply)

        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                self._handle(await reader.readexactly(size), "tcp", send)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _handle(self, data: bytes, protocol: str, send: object) -> None:
        assert callable(send) and self._loop is not None
        fast = self.zone.fast_answer(data)
        if fast is not None:
            name, qtype, packed = fast
            with self.log.lock:
                self.log.queries.append((name, qtype, protocol))
                self.log.most_in_flight = max(
                    self.log.most_in_flight,
                    self.log.in_flight + ((name, qtype) not in self.log.pending))
            send(packed)
            return
        try:
            request = DNSRecord.parse(data)
        except Exception:  # not DNS: no answer, as a real server would drop it
            return
        name = str(request.q.qname).rstrip(".").lower()
        question = (name, QTYPE[request.q.qtype])
        with self.log.lock:
            self.log.queries.append((*question, protocol))
            self.log.pending[question] += 1
            self.log.most_in_flight = max(self.log.most_in_flight, self.log.in_flight)
        reply, delay = self.zone.answer(request)

        def answer() -> None:
            with self.log.lock:
                self.log.pending[question] -= 1
                if self.log.pending[question] <= 0:
                    del self.log.pending[question]
            if reply is not None:
                send(reply.pack())

        if reply is None:
            # Never answered; it leaves the in-flight count after a while, as the
            # client has given up on it long before.
            self._loop.call_later(30.0, answer)
        elif delay:
            self._loop.call_later(delay, answer)
        else:
            answer()


def _large_receive_buffer(sock: socket.socket) -> None:
    """Room for thousands of queries at once: the default (~200 KB, some 300 datagrams)
    drops a burst of a client's 512 queries in flight, which then time out."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            return
        except OSError:  # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped
            continue


def wait_for(predicate: object, within: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``within`` seconds pass (bounded)."""
    assert callable(predicate)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def main() -> None:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with DNSServer(hosts=hosts) as server:
        print(server.address, flush=True)
        sys.stdin.read()  # until the parent closes it (or dies)
        print(json.dumps({"queries": len(server.log.queries),
                          "most_in_flight": server.log.most_in_flight}), flush=True)


if __name__ == "__main__":
    main()
