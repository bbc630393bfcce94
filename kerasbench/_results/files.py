"""Writing and reading files safely: every file this package touches goes through here.

- `replace_atomically` writes ``report.md``, ``report.png`` and
  ``results.csv``: into a temporary file in the same folder, then
  `os.replace` onto the name. Readers see the old file or the new one, never
  half of one, and a symbolic link planted at the name is replaced, never
  followed.
- `open_for_append` opens the append-only results file, refusing a symbolic
  link (``O_NOFOLLOW``) and anything but a regular file; `locked` holds an
  exclusive ``flock`` on it; `write_all` writes every byte or raises.
- `read_regular` reads a file whole, refusing anything but a regular file
  without blocking on a FIFO or a device.

Pure standard library.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile


class NotRegularFileError(OSError):
    """A path that is a FIFO, a device, a folder or a socket, not a regular file."""


def os_error(number, message, cls=OSError):
    """An `OSError` whose text is ``message`` alone (no ``[Errno N]``) and
    whose ``errno`` is ``number``."""
    error = cls(message)
    error.errno = number
    return error


def kind_of(mode):
    """What a ``st_mode`` is, in words: ``"a FIFO (named pipe)"``, ``"a folder"``."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file"))
    return next((words for test, words in kinds if test(mode)), "not a regular file")


# ------------------------------------------------------------------ replacing


@contextlib.contextmanager
def replace_atomically(path, *, binary=False):
    """Writes a file through a temporary file and `os.replace`.

    Usage: ``with replace_atomically(path) as f: f.write(text)``. The file
    object is text (UTF-8, newlines as written) or, with ``binary``, bytes.
    When the block raises, ``path`` is left as it was and the temporary file
    is removed. The new file gets the usual permissions (``0o666`` less the
    umask), whatever the old one or a link at ``path`` had.

    Raises:
        OSError: If the folder cannot be written to.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                     suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with (os.fdopen(fd, "wb") if binary
              else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask():
    """The process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ appending


def open_for_append(path):
    """Opens (creating it) the file results are appended to; returns the fd.

    Raises:
        OSError: If ``path`` is a symbolic link (never followed: the message
            says to give the link's target), is not a regular file, or
            cannot be opened; the message names it.
    """
    flags = (os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):  # Windows: check first
        raise _link_error(path)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP and os.path.islink(path):
            raise _link_error(path) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise os_error(errno.EINVAL, f"{path} is {kind_of(mode)}; results are appended to "
                       "a regular file only", NotRegularFileError)
    return fd


def _link_error(path):
    return os_error(errno.ELOOP, f"{path} is a symbolic link; results are appended to a "
                    "regular file only, never through a link (give the link's target instead)")


@contextlib.contextmanager
def locked(fd):
    """Holds an exclusive ``flock`` on ``fd`` (where the platform has one).

    Without ``fcntl`` (Windows) there is no lock: two processes appending to
    one file at the same moment may interleave their lines.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_all(fd, data, write=os.write):
    """Writes every byte of ``data``, however many calls it takes.

    Args:
        fd: An open file descriptor.
        data: Bytes.
        write: The write function (``os.write``; a test passes a faulty one).

    Raises:
        OSError: From ``write`` (a full disk: ``ENOSPC``; a file size limit:
            ``EFBIG``), or ``ENOSPC`` when a call writes nothing.
    """
    view = memoryview(data)
    while view:
        written = write(fd, view)
        if not written:
            raise os_error(errno.ENOSPC, "the write stored no byte")
        view = view[written:]


def read_all(fd, size):
    """The first ``size`` bytes of an open file (fewer if it is shorter)."""
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# -------------------------------------------------------------------- reading


def read_regular(path):
    """Reads a regular file whole, as bytes.

    Opened without blocking, so a FIFO or a device at ``path`` is refused at
    once instead of hanging the reader.

    Raises:
        NotRegularFileError: If ``path`` is not a regular file.
        OSError: If it cannot be opened or read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise os_error(errno.EINVAL, f"{path} is {kind_of(info.st_mode)}, not a regular "
                           "file", NotRegularFileError)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)
