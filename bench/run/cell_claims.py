"""Claims on evaluation cells, so concurrent runners on one results directory split the work.

A runner claims a cell before evaluating it by creating ``<results>/.claims/<cell>.claim``
exclusively (``bench.files.write_atomically(..., exclusive=True)``: a ``link(2)``, atomic on
NFS/Lustre as on a local disk, where ``fcntl`` locks may not work). The file records host, pid
and a random token; while the claim is held a heartbeat thread touches it every
``heartbeat_seconds``. The holder removes it after the cell's row is written.

Staleness rule (how a claim of a runner that was SIGKILLed, or whose node died, is taken over):
a claim is stale when its holder is on this host and its pid no longer exists, or when it has
not been touched for ``stale_seconds`` (default 300 s = 10 missed heartbeats; hosts' clocks must
agree to within that, as NTP keeps them), or when it is not a claim this code writes (not a JSON
object with a host and a pid in 1..``MAX_PID``, or not a regular file): claims are written
atomically, so such a file was damaged or planted, and no live runner holds it (a pid of -1
would otherwise ask ``kill`` about every process, and a FIFO would block its reader). A stale
claim is moved aside with ``rename`` (only one taker succeeds) and claimed afresh. In the rare
race where a taker moves aside a claim that was renewed a moment before, the cell may be
evaluated twice, but its row is still written once (cell files are first-writer-wins), so no
result is ever duplicated or lost.

Example::

    claims = CellClaims("results/demo")
    if claims.acquire(key):
        try:
            ...  # evaluate, write the row
        finally:
            claims.release(key)
    claims.close()
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from bench.bounds import MAX_PID
from bench.errors import BenchError
from bench.files import read_regular, refuse_link, write_atomically
from bench.store.results import cell_file_name

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


class CellClaims:
    """This process's claims on cells of one results directory (thread-safe)."""

    def __init__(self, directory: str | os.PathLike, heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 stale_seconds: float = STALE_SECONDS) -> None:
        self.folder = refuse_link(Path(directory) / ".claims", "claims folder")
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.host = socket.gethostname()
        self._held: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, cell_key: str) -> Path:
        return self.folder / (cell_file_name(cell_key)[:-len(".json")] + ".claim")

    def acquire(self, cell_key: str) -> bool:
        """Claim the cell; False when a live runner holds it. A stale claim is taken over."""
        path = self.path(cell_key)
        record = json.dumps({"host": self.host, "pid": os.getpid(), "token": secrets.token_hex(8),
                             "cell_key": cell_key})
        for _ in range(2):  # a second try after moving a stale claim aside
            if write_atomically(path, record, exclusive=True):
                with self._lock:
                    self._held[cell_key] = path
                self._start_heartbeat()
                return True
            if not self._take_over_if_stale(path):
                return False
        return False

    def release(self, cell_key: str) -> None:
        with self._lock:
            path = self._held.pop(cell_key, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release every claim this process holds and stop the heartbeat."""
        for key in list(self._held):
            self.release(key)
        self._stop.set()

    # ------------------------------------------------------------------ internals
    def is_stale(self, path: Path) -> bool:
        try:
            age = time.time() - path.lstat().st_mtime
            holder = json.loads(read_regular(path, "claim"))
        except FileNotFoundError:
            return False  # released meanwhile: the next exclusive create decides
        except (OSError, ValueError, BenchError, RecursionError):
            return True  # not a claim file this code wrote (see the staleness rule)
        pid = holder.get("pid") if isinstance(holder, dict) else None
        if not isinstance(holder.get("host") if isinstance(holder, dict) else None, str) \
                or isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= MAX_PID:
            return True
        if age > self.stale_seconds:
            return True
        return holder["host"] == self.host and not _alive(pid)

    def _take_over_if_stale(self, path: Path) -> bool:
        if not self.is_stale(path):
            return False
        aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}.stale")
        try:
            os.rename(path, aside)  # one taker wins; the others find the name gone (or a fresh claim)
        except FileNotFoundError:
            return True
        aside.unlink(missing_ok=True)
        return True

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, daemon=True, name="claim-heartbeat")
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            with self._lock:
                held = list(self._held.values())
            for path in held:
                try:
                    os.utime(path)
                except FileNotFoundError:
                    pass  # taken over after a long stall: its row is still written once


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
