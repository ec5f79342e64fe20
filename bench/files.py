"""File mechanisms shared by the whole harness: one atomic writer and one inter-process lock.

- :func:`write_atomically`: a temp file in the same folder, fsync, then ``rename`` (replace) or,
  with ``exclusive=True``, ``link(2)`` (publish once: the first writer wins). Every output file of
  the harness (sets, sidecars, results cells, tables, claims, ``full_data.json``) goes through it.
- :func:`file_lock`: an exclusive lock on a lock file (``filelock``, which torch already brings
  in); the OS drops it when its holder dies, so a killed worker never leaves it held.

Example::

    write_atomically(Path("out/table.csv"), csv_text)                  # readers see old or new, never half
    if write_atomically(cell_path, row_json, exclusive=True): ...      # False: someone published first
    with file_lock(Path("out/.locks/set.lock")):
        ...  # one process at a time
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from bench.paths import give_default_mode


def write_atomically(path: Path, data: bytes | str, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename; returns whether it wrote.

    A process killed mid-write leaves only a ``.<name>.*.tmp`` file, never a half file at ``path``.
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
