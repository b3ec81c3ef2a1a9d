"""Atomic file writing: the one writer behind checkpoints and exported files.

A file is written to a temporary file in the target directory, flushed and ``fsync``\\ ed,
then ``os.replace``\\ d over the target (atomic on POSIX and Windows), and the directory is
``fsync``\\ ed: a crash or an error at any moment leaves either the old file or the new
one, never a partial file. The new file gets the mode of the file it replaces, or the mode
a plain ``open()`` would give (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

__all__ = ["atomic_path", "atomic_write"]

PathLike = Union[str, os.PathLike]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory; the rename is durable there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777  # keep the mode of the file we replace
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_file(name: str) -> None:
    # Not suppressed: a failed fsync (ENOSPC, EIO) means the data may not be on disk, so the
    # old file must stay. Opened for writing, which fsync needs on Windows.
    fd = os.open(name, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary file name next to ``path``; when the block succeeds it replaces ``path``.

    For writers that take a file name (``torch.onnx.export``, ``nir.write``). If the block
    raises, the temporary file is removed and ``path`` is left as it was.

    Examples:
        >>> import pathlib, tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "graph.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = pathlib.Path(tmp).write_text("nodes")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('nodes', ['graph.txt'])
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError, AttributeError):
            os.fchmod(fd, _file_mode(path))
        os.close(fd)
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; when the block succeeds it replaces ``path``.

    If the block raises, the temporary file is removed and ``path`` is left as it was.

    Examples:
        >>> import pathlib, tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> with atomic_write(target, "w") as f:
        ...     _ = f.write("hello")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('hello', ['notes.txt'])
    """
    # closing the file flushes it; atomic_path then fsyncs it once before the rename
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
