"""WARC capture: every fetched response and its request, as WARC/1.1 records (warcio).

One writer a worker process, so processes and nodes never share a file.
Files are named ``crawl-<UTC time>-<node>-<pid>-<serial>.warc.gz``, gzip-compressed
a record at a time (each record its own gzip member, so any record can be
read from its offset), and rotated once they pass ``warc_max_bytes``. A file
being written ends in ``.open`` and is renamed when complete.

Each fetch writes a ``response`` record, then its ``request`` record
(``WARC-Concurrent-To`` the response), flushed before the result is
recorded; the result gains ``warc_file`` and ``warc_offset`` (the response
record's). Redirects and repeated fetches are recorded as they happened.
The request record holds the headers exactly as aiohttp sent them (Host,
User-Agent, Accept, a revisit's ``If-None-Match``/``If-Modified-Since``,
Accept-Encoding), in their order.

A 304 to a revisit's conditional request is a ``revisit`` record instead of a
``response`` (WARC/1.1 6.7.2, profile ``server-not-modified``): the 304's
HTTP headers, no payload, ``WARC-Refers-To-Target-URI`` the URL, and
``WARC-Refers-To`` and ``WARC-Refers-To-Date`` the ``WARC-Record-ID`` and
``WARC-Date`` of the last 200 response record that holds the payload the
validator stands for (not of a later failed visit: a replay must find the
page, not a 503). The recrawl state keeps that capture (``new_capture``: 41
bytes); a 304 for which it knows none (a visit before WARC was on, a failed
write) is kept as a ``response`` record with no payload. Each record's
``WARC-Date`` has microseconds, so a capture is named exactly.

The payload is the body as the crawler read it: aiohttp has removed the
transfer and content encodings, so those two headers are left out of the
record's HTTP headers and Content-Length is the stored length.

A page rendered in the browser (``render``) keeps its response record as
fetched; the DOM the browser made of it follows as a ``conversion`` record
(``text/html; charset=utf-8``) whose ``WARC-Refers-To`` is that response,
and with ``render_screenshot`` a ``resource`` record (``image/png``) likewise.

A sitemap is captured the same way, but its body streams past the parser and
is never held whole: it is spooled (``WarcCapture.spool``: in memory up to
``SPOOL_IN_MEMORY``, then in a file in the WARC directory) and copied into
the record from there. A sitemap not read to its end (over a size limit, or
malformed) keeps what was read, marked ``WARC-Truncated: length`` or
``unspecified`` (WARC/1.1 5.13).

A crash can leave a ``.open`` file whose last gzip member is cut short. The
next writer on the same node repairs every such file of a dead process: it
keeps the complete members (a gzip member's trailer, with its CRC, is written
last, so a complete member is a complete record), cuts the rest, and renames
the file.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import tempfile
import time
import uuid
import zlib
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from crawler.config import Settings
from crawler.net.codecs import accept_encoding
from crawler.net.fetch import ACCEPT, Response
from crawler.net.identity import redacted_headers

log = logging.getLogger("crawler.warc")

OPEN_SUFFIX = ".open"
SKIPPED_HEADERS = frozenset({b"content-encoding", b"transfer-encoding", b"content-length"})
SCAN_CHUNK = 1 << 20
NOT_MODIFIED_PROFILE = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
SPOOL_IN_MEMORY = 1 << 20
"""Bytes of a streamed body (a sitemap) held in memory before it is spooled to a file."""


def warc_date(micros: int) -> str:
    """A WARC-Date with microseconds (WARC/1.1 allows them): ``2026-12-06T03:39:08.123456Z``."""
    seconds, fraction = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") \
        + f".{fraction:06d}Z"


def new_capture() -> tuple[str, str, str]:
    """A new record's WARC-Date, its WARC-Record-ID, and the two packed as the recrawl
    state keeps them: ``<unix microseconds>.<the record's UUID, base64url>``."""
    micros, record = time.time_ns() // 1000, uuid.uuid4()
    packed = f"{micros}.{urlsafe_b64encode(record.bytes).rstrip(b'=').decode()}"
    return warc_date(micros), f"<urn:uuid:{record}>", packed


def unpack_capture(packed: str) -> tuple[str, str] | None:
    """(WARC-Date, WARC-Record-ID) of a packed capture; None for '' or garbage."""
    micros, dot, record = packed.partition(".")
    if not dot or not micros.isdigit() or len(record) != 22:
        return None
    try:
        record_id = uuid.UUID(bytes=urlsafe_b64decode(record + "=="))
    except ValueError:
        return None
    return warc_date(int(micros)), f"<urn:uuid:{record_id}>"


def node_name() -> str:
    return socket.gethostname().replace("-", "_")


def complete_length(path: Path) -> int:
    """Bytes of ``path`` that are whole gzip members (complete records), from the start."""
    good = pos = 0
    inflate = zlib.decompressobj(wbits=31)
    with open(path, "rb") as fh:
        while chunk := fh.read(SCAN_CHUNK):
            data = chunk
            while data:
                try:
                    inflate.decompress(data)
                except zlib.error:
                    return good
                if inflate.eof:
                    used = len(data) - len(inflate.unused_data)
                    pos += used
                    good = pos
                    data = inflate.unused_data
                    inflate = zlib.decompressobj(wbits=31)
                else:
                    pos += len(data)
                    data = b""
    return good


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repair_dead_files(directory: Path, node: str) -> list[Path]:
    """Cut the partial tail of every ``.open`` file a dead process of this node left."""
    repaired = []
    for path in sorted(directory.glob(f"*-{node}-*.warc.gz{OPEN_SUFFIX}")):
        try:
            pid = int(path.name.removesuffix(".warc.gz" + OPEN_SUFFIX).rsplit("-", 2)[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and _alive(pid):
            continue
        size, keep = path.stat().st_size, complete_length(path)
        if keep < size:
            with open(path, "rb+") as fh:
                fh.truncate(keep)
            log.warning("warc: cut %d bytes of a partial record at the end of %s",
                        size - keep, path.name)
        final = path.with_name(path.name.removesuffix(OPEN_SUFFIX))
        path.rename(final)
        repaired.append(final)
    return repaired


class WarcWriter:
    """This process's WARC files in ``directory``: write, rotate, close."""

    def __init__(self, directory: str | Path, *, max_bytes: int, user_agent: str,
                 node: str | None = None) -> None:
        from warcio.warcwriter import WARCWriter

        self._warc_writer = WARCWriter
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.node = node or node_name()
        self.serial = 0
        self.path: Path | None = None
        self.fh: io.BufferedWriter | None = None
        self.writer: Any = None
        self.last_response_id = ""  # WARC-Record-ID of the last response (or revisit) record
        repair_dead_files(self.directory, self.node)

    def _open(self) -> None:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        while True:
            # A second writer in this process within the same second (a worker run
            # again) must not overwrite the first one's file: the next serial.
            self.serial += 1
            name = f"crawl-{stamp}-{self.node}-{os.getpid()}-{self.serial:05d}.warc.gz"
            self.path = self.directory / name
            if self.path.exists():
                continue
            try:
                self.fh = open(self.path.with_name(name + OPEN_SUFFIX), "xb")  # noqa: SIM115
            except FileExistsError:
                continue
            break
        writer = self._warc_writer(self.fh, gzip=True, warc_version="WARC/1.1")
        info = writer.create_warcinfo_record(name, {"software": "crawler/0.1",
                                                    "format": "WARC File Format 1.1"})
        writer.write_record(info)
        self.writer = writer

    def write(self, request_headers: Sequence[tuple[str, str]], response: Response,
              refers_to: str = "", *, payload: IO[bytes] | None = None,
              truncated: str | None = None) -> tuple[str, int, str]:
        """Write the response and its request; returns (file name, the response's
        offset, the capture packed when the record holds a 200's whole payload, else '').

        ``request_headers``: used when the response does not carry the headers
        it was sent with. ``refers_to``: for a revisit's 304, the packed capture
        of the payload its validator stands for (a ``revisit`` record referring
        to it). ``payload``: the body, read from here (to its end) instead of
        ``response.body``; ``truncated``: why the body is not whole
        (``WARC-Truncated``).
        """
        from warcio.statusandheaders import StatusAndHeaders

        if self.fh is not None and self.fh.tell() >= self.max_bytes:
            self.close()
        if self.fh is None:
            self._open()
        assert self.fh is not None and self.path is not None
        writer = self.writer
        url = response.final_url
        reason = response.reason or _reason(response.status)
        not_modified = response.status == 304  # no body, nothing decoded: headers as sent
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
                   if not_modified or k.lower() not in SKIPPED_HEADERS]
        if payload is None:
            payload, length = io.BytesIO(response.body), len(response.body)
        else:
            length = payload.seek(0, io.SEEK_END)
            payload.seek(0)
        if not not_modified:
            headers.append(("Content-Length", str(length)))
        http = StatusAndHeaders(f"{response.status} {reason}", headers, protocol="HTTP/1.1")
        date, record_id, capture = new_capture()
        stamp = {"WARC-Date": date, "WARC-Record-ID": record_id}
        known = unpack_capture(refers_to) if not_modified else None
        if known is not None:
            record = writer.create_warc_record(url, "revisit", http_headers=http,
                                               warc_headers_dict=stamp | {
                "WARC-Profile": NOT_MODIFIED_PROFILE, "WARC-Refers-To-Target-URI": url,
                "WARC-Refers-To": known[1], "WARC-Refers-To-Date": known[0]})
        else:
            record = writer.create_warc_record(
                url, "response", payload=payload, length=length, http_headers=http,
                warc_headers_dict=stamp | ({"WARC-Truncated": truncated} if truncated else {}))
        split = urlsplit(url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        sent = list(response.request_headers.items()) if response.request_headers is not None \
            else [("Host", split.netloc), *request_headers]
        request = writer.create_warc_record(
            url, "request", payload=io.BytesIO(b""), length=0,
            http_headers=StatusAndHeaders(f"GET {path} HTTP/1.1", redacted_headers(sent),
                                          is_http_request=True),
            warc_headers_dict={"WARC-Concurrent-To": record.rec_headers.get_header(
                "WARC-Record-ID")})
        offset = self.fh.tell()
        writer.write_record(record)
        writer.write_record(request)
        self.fh.flush()  # in the kernel before the result names it
        self.last_response_id = record_id
        whole = response.status == 200 and not truncated
        return self.path.name, offset, capture if whole else ""

    def write_conversion(self, url: str, content: bytes, *, kind: str = "conversion",
                         content_type: str = "text/html; charset=utf-8") -> int:
        """What a browser made of the last response written: its DOM as a ``conversion``
        record (WARC/1.1 6.8), or a screenshot as a ``resource`` record, whose
        ``WARC-Refers-To`` is that response; its offset."""
        assert self.fh is not None and self.last_response_id
        date, record_id, _ = new_capture()
        record = self.writer.create_warc_record(
            url, kind, payload=io.BytesIO(content), length=len(content),
            warc_content_type=content_type,
            warc_headers_dict={"WARC-Date": date, "WARC-Record-ID": record_id,
                               "WARC-Refers-To": self.last_response_id})
        offset = self.fh.tell()
        self.writer.write_record(record)
        self.fh.flush()
        return offset

    def close(self) -> None:
        if self.fh is None or self.path is None:
            return
        self.fh.close()
        self.path.with_name(self.path.name + OPEN_SUFFIX).rename(self.path)
        self.fh = None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class WarcCapture:
    """The worker's side: one writer, the request headers it sends, errors logged not raised."""

    def __init__(self, writer: WarcWriter, request_headers: list[tuple[str, str]]) -> None:
        self.writer = writer
        self.request_headers = request_headers

    @classmethod
    def from_settings(cls, settings: Settings) -> WarcCapture | None:
        if not settings.warc_dir:
            return None
        writer = WarcWriter(settings.warc_dir, max_bytes=settings.warc_max_bytes,
                            user_agent=settings.full_user_agent)
        return cls(writer, [("User-Agent", settings.full_user_agent), ("Accept", ACCEPT),
                            ("Accept-Encoding", accept_encoding())])

    def write(self, response: Response, refers_to: str = "", *,
              spool: BodySpool | None = None, truncated: str | None = None) -> str:
        """Capture one response; sets ``response.warc``. A failed write is logged, not raised.

        ``refers_to``: a revisit's packed capture of the payload its validator
        stands for: its 304 is a revisit record referring to it. ``spool``,
        ``truncated``: a streamed body and why it is not whole. Returns this
        record's packed capture if it holds a 200's whole payload (for the URL's
        recrawl state), else ''.
        """
        if spool is not None and spool.failed:
            return ""  # logged when it failed: no record rather than a wrong one
        try:
            name, offset, capture = self.writer.write(
                self.request_headers, response, refers_to,
                payload=spool.file if spool is not None else None, truncated=truncated)
        except OSError as exc:
            log.error("warc: cannot write %s to %s: %s", response.url, self.writer.directory,
                      exc)
            return ""
        response.warc = name, offset
        return capture

    def write_rendered(self, rendered: Response, fetched: Response,
                       screenshot: bytes | None = None) -> None:
        """A rendered page's DOM, after its response as ``fetched`` (``write``): a
        conversion record, and its ``screenshot`` (PNG) as a resource record. The
        page's record names the response's offset (``rendered.warc``)."""
        rendered.warc = fetched.warc
        if fetched.warc is None:
            return  # its response was not written: nothing to refer to
        try:
            self.writer.write_conversion(rendered.final_url, rendered.body)
            if screenshot is not None:
                self.writer.write_conversion(rendered.final_url, screenshot, kind="resource",
                                             content_type="image/png")
        except OSError as exc:
            log.error("warc: cannot write the rendered %s: %s", rendered.url, exc)

    def spool(self, cap: int) -> BodySpool:
        """Somewhere to keep a streamed body for ``write``, up to ``cap`` bytes."""
        return BodySpool(self.writer.directory, cap)

    def close(self) -> None:
        self.writer.close()


class BodySpool:
    """A body kept for its WARC record as it streams by (a sitemap's), never whole in memory.

    In memory up to ``SPOOL_IN_MEMORY``, then in an unnamed temporary file in
    the WARC directory; bytes past ``cap`` are counted, not kept. A write that
    fails (disk full) is logged and the capture of this body given up, as a
    failed record write is: the fetch itself goes on.
    """

    def __init__(self, directory: Path, cap: int) -> None:
        # Closed by close(): it lives across the reads of one body.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY, dir=str(directory))
        self.cap = cap
        self.size = 0  # bytes offered, kept or not
        self.failed = False

    @property
    def over(self) -> bool:
        """More bytes came than ``cap``: the kept body is cut."""
        return self.size > self.cap

    def write(self, chunk: bytes) -> None:
        if not self.failed and self.size < self.cap:
            try:
                self.file.write(chunk[:self.cap - self.size])
            except OSError as exc:
                log.error("warc: cannot spool a body in %s: %s", self.file, exc)
                self.failed = True
        self.size += len(chunk)

    def close(self) -> None:
        self.file.close()
