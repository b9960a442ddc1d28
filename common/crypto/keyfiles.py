"""Secret files on disk: written owner-only and atomically, read only when nobody else can.

Who is trusted: the operating-system account that runs the server (or one client) and root.
The adversary: another local account on the same machine, and whoever can plant a file or a
symbolic link in the key directory before fedshield writes there.

* :func:`write_private` creates a temporary file in the target directory with mode 0600 (so
  the secret is never readable by others, not even for an instant), then ``os.replace``\\ s it
  over the target. An existing target therefore ends up 0600 too, whatever its old mode was: a
  plain ``open(path, "w")`` keeps an old 0644 mode. A symbolic link in place of the target is
  refused, so a planted ``server_0000.key -> /somewhere/readable`` cannot redirect the secret.
* :func:`read_private` refuses a secret whose mode grants any permission to group or others
  (OpenSSH's rule for ``~/.ssh/id_*``), before reading a byte of it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from common.errors import IntegrityError
from common.results import atomic_write

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def _write(path: str | os.PathLike[str], data: bytes, mode: int) -> Path:
    target = Path(path)
    if target.is_symlink():
        raise IntegrityError(
            f"{target}: is a symbolic link; refusing to write a key through it (remove it first)"
        )

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    atomic_write(target, write, mode=mode)
    return target


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create or replace ``path`` with ``data``, mode 0600, atomically; a symlink is refused."""
    return _write(path, data, PRIVATE_MODE)


def write_public(path: str | os.PathLike[str], data: bytes) -> Path:
    """Create or replace the public half ``path`` (0644), atomically; a symlink is refused."""
    return _write(path, data, PUBLIC_MODE)


def private_mode_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` may not hold a secret (missing, not a file, too open), or None."""
    target = Path(path)
    try:
        status = target.stat()
    except FileNotFoundError:
        return f"{target}: no such key file"
    if not stat.S_ISREG(status.st_mode):
        return f"{target}: not a regular file"
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        return (
            f"{target}: permissions {mode:04o} let group or others read it; a private key "
            f"must be 0600 (chmod 600 {target})"
        )
    return None


def read_private(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a secret file, refused (one line) when others could have read it."""
    if (problem := private_mode_problem(path)) is not None:
        raise IntegrityError(problem)
    return Path(path).read_bytes()
