"""File mechanisms shared by the whole harness: one atomic writer and one inter-process lock.

- :func:`write_atomically`: a temp file in the same folder, fsync, then ``rename`` (replace) or,
  with ``exclusive=True``, ``link(2)`` (publish once: the first writer wins). Every output file of
  the harness (sets, sidecars, results cells, tables, claims, ``full_data.json``) goes through it.
- :func:`read_regular`: every file the harness reads back (sets, sidecars, cells, claims, tables)
  is opened without blocking and refused unless it is a regular file, so a FIFO or a device
  planted under a known name is a one-line error, never a hang.
- :func:`refuse_link`: a folder the harness makes inside an output directory (``cells/``,
  ``.claims/``) that was replaced by a symbolic link is refused, so no write lands elsewhere.
- :func:`file_lock`: an exclusive lock on a lock file (``filelock``, which torch already brings
  in); the OS drops it when its holder dies, so a killed worker never leaves it held.

Example::

    write_atomically(Path("out/table.csv"), csv_text)                  # readers see old or new, never half
    blob = read_regular(Path("out/cells/k.json"), "results cell")      # BenchError for a FIFO
    if write_atomically(cell_path, row_json, exclusive=True): ...      # False: someone published first
    with file_lock(Path("out/.locks/set.lock")):
        ...  # one process at a time
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from bench.errors import BenchError
from bench.paths import give_default_mode


def write_atomically(path: Path, data: bytes | str, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename; returns whether it wrote.

    A process killed mid-write leaves only a ``.<name>.*.tmp`` file, never a half file at ``path``.
    The rename replaces whatever ``path`` is, a symbolic link included: a link planted at ``path``
    is replaced by the new file, never followed, so nothing outside the folder is overwritten.
    ``exclusive``: first writer wins: if ``path`` exists nothing is written and False is returned.
    That publish step is ``link(2)``, not ``O_EXCL``, because link is atomic on NFS too; a lost NFS
    reply is recognised by the temp file's link count reaching 2 (the lock-file recipe of open(2)).

    Example::

        write_atomically(Path("results/x/full_data.json"), json.dumps(records))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        give_default_mode(fd)  # mkstemp makes 0600; outputs get the umask's mode like any tool's
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return os.stat(tmp).st_nlink == 2
        except OSError:  # a file system without hard links: check, then rename (a narrow last-wins race)
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if exclusive:
            Path(tmp).unlink(missing_ok=True)  # the published name (if any) is a second link to the data


def read_regular(path: Path, what: str = "file") -> bytes:
    """The bytes of ``path``, which must be a regular file (or a link to one): opened with
    ``O_NONBLOCK`` and checked with ``fstat`` before reading, so a FIFO, socket or device is a
    BenchError at once instead of a reader blocked for good. A missing file raises FileNotFoundError.

    Example::

        row = json.loads(read_regular(cell_path, "results cell"))
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BenchError(f"{what} {path} is not a regular file (a FIFO, socket or device?); "
                             "refusing to read it")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def refuse_link(folder: Path, what: str) -> Path:
    """``folder`` itself, or a BenchError when it is a symbolic link: a folder the harness creates
    inside an output directory and writes into is never a link, so one found there was planted
    and following it would write outside the output directory.

    Example::

        refuse_link(results / "cells", "results cells folder")
    """
    if Path(folder).is_symlink():
        raise BenchError(f"{what} {folder} is a symbolic link; refusing to write through it "
                         "(replace it by a plain directory)")
    return Path(folder)


# the folders the harness itself creates inside a results directory and writes into
OUTPUT_FOLDERS = ("cells", ".claims", ".locks", "synthetic", "figures")


def refuse_linked_folders(directory: Path) -> None:
    """A BenchError when a folder the harness writes into inside ``directory`` (``cells/``,
    ``cells-<name>/``, ``.claims/``, ``synthetic/``, ``figures/`` and every folder under it) is a
    symbolic link (the directory itself may be one: that is where the user put it).

    Example::

        refuse_linked_folders(Path("results/mine"))    # before tables and figures are regenerated
    """
    directory = Path(directory)
    try:
        entries = [e for e in os.scandir(directory)
                   if e.name in OUTPUT_FOLDERS or e.name.startswith("cells-")]
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        refuse_link(Path(entry.path), "results folder")
        if entry.name == "figures" and entry.is_dir(follow_symlinks=False):
            for root, dirs, _ in os.walk(entry.path):
                for name in dirs:
                    refuse_link(Path(root) / name, "results folder")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder if missing) for the ``with`` block.

    Waits while another process holds it; released when the block ends or its holder dies.

    Example::

        with file_lock(out / ".locks" / "set.lock"):
            make_once()
    """
    from filelock import FileLock  # a few ms of import, paid only by the runner's workers

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # thread_local=False: the holder is this process, like the fcntl lock it replaces
    with FileLock(str(path), thread_local=False):
        yield


# ----------------------------------------------------------------------------- what a command wrote

def file_snapshot(root: Path) -> dict[str, int]:
    """``relative path -> mtime (ns)`` of every file under ``root`` (links not followed), so a
    command can say afterwards how many files it wrote: new ones and rewritten ones."""
    root = Path(root)
    found: dict[str, int] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            try:
                found[path.relative_to(root).as_posix()] = path.lstat().st_mtime_ns
            except OSError:  # removed while we looked (a temp file renamed into place)
                continue
    return found


def describe_written(root: Path, before: dict[str, int]) -> str:
    """``wrote 42 files under out: 18 in synthetic/, 7 in cells/, ...`` for the files that are new or
    rewritten since ``before`` (:func:`file_snapshot`): every file, sets, cells and locks included,
    so the count is what a user finds on disk."""
    changed = [rel for rel, mtime in file_snapshot(root).items() if before.get(rel) != mtime]
    groups: dict[str, int] = {}
    for rel in changed:
        head = rel.split("/", 1)[0] + "/" if "/" in rel else ""
        groups[head] = groups.get(head, 0) + 1
    parts = [f"{n} in {head}" for head, n in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])) if head]
    if groups.get(""):
        parts.append(f"{groups['']} at its top level")
    return f"wrote {len(changed)} files under {root}" + (f": {', '.join(parts)}" if parts else "")


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks (an archive is never held in memory whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
