"""Writing files atomically: whatever was at the path stays intact until the new content is complete.

A write goes to a temporary file in the same directory, is flushed to disk, and is then renamed over
the path (one atomic step on POSIX filesystems). A process killed at any point, a full disk or an
exception leaves either the old file or the new one, never a mixture, and no temporary file behind
(except after SIGKILL, which nothing can clean up: they are hidden ``.NAME.*.tmp`` files).
"""

import contextlib
import os
import tempfile


def default_file_mode():
    """0o666 minus the umask: what a plainly created file would get (mkstemp makes it 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory):
    """Make a rename itself durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def place_without_overwriting(tmp, path):
    """Move ``tmp`` to ``path`` unless something is there; FileExistsError if it is."""
    try:
        # link() fails if path appeared meanwhile, so a racing writer's file is never clobbered.
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path}: already exists (not overwriting)") from None
    except OSError:  # a filesystem without hard links: check, then rename (a tiny race window remains)
        if os.path.lexists(path):
            raise FileExistsError(f"{path}: already exists (not overwriting)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def temporary_prefix(path):
    """The name every temporary file for ``path`` starts with (hidden, beside it)."""
    return f".{os.path.basename(path)}."


def remove_leftover_temporaries(path):
    """Delete the temporary files that writes to ``path`` killed by SIGKILL left behind."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = temporary_prefix(path)
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(".tmp"):
            os.unlink(os.path.join(directory, name))


@contextlib.contextmanager
def atomic_write(path, overwrite=True):
    """``with atomic_write(path) as file:`` write binary content to ``file``; it lands at ``path``
    only if the block completes. With ``overwrite=False`` an existing file is never replaced."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path}: already exists (not overwriting)")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, default_file_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            place_without_overwriting(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def write_text_atomically(path, text):
    """Replace the file at ``path`` by ``text`` (UTF-8) atomically."""
    with atomic_write(path) as file:
        file.write(text.encode("utf-8"))
