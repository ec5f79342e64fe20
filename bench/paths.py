"""File names and file modes of everything the harness writes.

Names built from data (a method, dataset, architecture, study or spec name read from a sidecar,
a results row or the command line) go through :func:`safe_slug`, so no value can climb out of the
output directory (``../``), hide a file (a leading dot) or name a device. Files are created with
the mode any other tool gives them (``0666`` less the process umask), not ``mkstemp``'s ``0600``.

Example::

    from bench.paths import safe_slug
    stem = f"{safe_slug(row['method'])}-{safe_slug(row['dataset'])}-ipc{int(row['ipc'])}"
    safe_slug("../../x/pwned")     # 'x-pwned'
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from bench.errors import BenchError

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_SLUG = 120


def safe_slug(value: object, fallback: str = "unnamed") -> str:
    """``value`` as one safe file-name component: letters, digits, ``. _ + -``; every other run of
    characters (``/``, ``\\``, spaces, NULs) becomes ``-``; no leading dot or dash, no ``..``.

    Names that are already safe (``dc-nodsa``, ``resnet18.a1_in1k``, ``ipc10``) are unchanged, so
    existing files keep their names.

    Example::

        safe_slug("dasm-reverse")          # 'dasm-reverse'
        safe_slug("../../../../x/pwned")   # 'x-pwned'
    """
    text = _UNSAFE.sub("-", str(value))
    text = re.sub(r"\.{2,}", "-", text)       # no '..' anywhere
    text = re.sub(r"-{2,}", "-", text).strip("-.")
    return text[:_MAX_SLUG].rstrip("-.") or fallback


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: ``0666 & ~umask``."""
    return 0o666 & ~current_umask()


def give_default_mode(fd: int) -> None:
    """Give a file created by ``tempfile.mkstemp`` (mode 0600) the usual mode before it is renamed
    into place, so results are readable by the group/others exactly as the umask allows."""
    try:
        os.fchmod(fd, default_file_mode())
    except OSError:  # a file system without modes (some CIFS/FUSE mounts): the write must still succeed
        pass


def check_writable(path: str | os.PathLike, what: str = "output", directory: bool = False) -> Path:
    """Fail in one line, before any work is spent, when ``path`` (a file, or with ``directory`` a
    directory, to be created or replaced) cannot be written: it is the wrong kind of thing, an
    ancestor is a file, or the nearest existing directory is read-only or not writable.

    Example::

        check_writable("results/mine", "--results", directory=True)   # BenchError if it cannot be
    """
    if not str(path).strip():  # Path("") is ".": an empty --out would write into the working directory
        raise BenchError(f"{what} is an empty path; give a {'directory' if directory else 'file'}")
    if not directory and str(path).endswith("/"):  # Path drops the slash: "new/" would become a file "new"
        raise BenchError(f"cannot write {what} {path}: it names a directory; give a file name")
    target = Path(path)
    if target.exists() and target.is_dir() != directory:
        kind = "a directory" if target.is_dir() else "a file"
        raise BenchError(f"cannot write {what} {target}: it is {kind}")
    if not directory and target.exists() and not target.is_file():  # /dev/null, a FIFO, a socket
        raise BenchError(f"cannot write {what} {target}: it is not a regular file (a device, FIFO or socket)")
    if directory and os.path.realpath(target) == os.path.realpath(os.sep):
        raise BenchError(f"cannot write {what} {target}: it is the file system root; give a directory of its own")
    probe = target if directory else target.parent
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            raise BenchError(f"cannot write {what} {target}: {probe} is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"cannot write {what} {target}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(probe) else "permission denied"
        raise BenchError(f"cannot write {what} {target}: {probe} is not writable ({reason})")
    return target


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def describe_os_error(exc: OSError) -> str:
    """An OSError as one line: what failed and on which path (``Permission denied: /x/y``)."""
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or type(exc).__name__
    where = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    return f"{reason}: {where}" if where else str(exc).splitlines()[0] if str(exc) else reason
