"""The output directory: a writability probe, atomic file writes, and the run lock.

Every output file is replaced in one step (temp file in the same directory,
fsync, ``os.replace``), so a full disk or a crash leaves the previous file
whole. One run at a time owns an output directory through :class:`OutputLock`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import sys
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError, VlmhbError
from .redact import redact

#: The results store's folder inside the output dir.
STORE_DIR = "results"
#: The lock file naming the run that owns the output dir.
LOCK_NAME = ".vlmhb.lock"
_SURROGATE = re.compile("[\ud800-\udfff]")


class OutputError(VlmhbError, OSError):
    """An output file or the results store could not be written (disk full...).

    Also an ``OSError`` carrying the cause's ``errno`` and ``strerror``.
    """

    def __init__(self, message: str, cause: OSError) -> None:
        OSError.__init__(self, cause.errno, cause.strerror, cause.filename)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[OutputError], tuple[str, OSError]]:
        return type(self), (self.message, OSError(self.errno, self.strerror, self.filename))


class OutputLockedError(ConfigError):
    """The output dir is in use by another run."""


def describe_os_error(exc: OSError) -> str:
    """``No space left on device [ENOSPC]``: the errno text and its name."""
    name = errno.errorcode.get(exc.errno) if exc.errno is not None else None
    text = exc.strerror or str(exc)
    return f"{text} [{name}]" if name else text


def encode_text(text: str) -> bytes:
    """UTF-8 bytes of ``text``; a lone surrogate (unencodable) becomes U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


@lru_cache(maxsize=1)
def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    """The existing file's permissions, else what a plain ``open`` would give."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: Path, data: bytes) -> str:
    """A fsynced temp file beside ``path`` holding ``data``; removed on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _mode_for(path))
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """Replace several files at once: all are written before any is replaced.

    On a failure (disk full, read-only...) no temp file is left, and no file
    (or, if a rename itself fails, only the files before it) has changed.
    Raises :class:`OutputError` naming the file.
    """
    temps: dict[Path, str] = {}
    current: Path | None = None
    try:
        for current, data in files.items():
            temps[current] = _write_temp(current, data)
        for current, tmp in list(temps.items()):
            os.replace(tmp, current)
            del temps[current]
    except OSError as exc:
        raise OutputError(
            f"cannot write {current}: {describe_os_error(exc)}; the previous file is kept", exc
        ) from exc
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    for folder in {p.parent for p in files}:
        _fsync_dir(folder)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; on failure the old file stays."""
    atomic_write_files({path: data})


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` in one step; on failure the old file stays."""
    atomic_write_bytes(path, encode_text(text))


def check_writable(output: Path) -> None:
    """Raise ``ConfigError`` unless files can be created in ``output``.

    Creates the directory (and its parents) when missing, then creates,
    writes and removes a probe file: this catches a path under a regular
    file, a path that is a file, a read-only file system, a full disk and
    permissions (which root ignores, so only a real write tells).
    """
    hint = "choose another --vlmhb-output"
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output dir {output} is not a directory; {hint}")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"output dir {output} cannot be created: {describe_os_error(exc)}; {hint}"
        ) from None
    store = output / STORE_DIR
    if store.exists() and not store.is_dir():
        raise ConfigError(
            f"{store} is not a directory, so the results store cannot be "
            f"written there; remove it or {hint}"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".vlmhb-probe-", dir=output)
        try:
            os.write(fd, b"vlmhb")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError(
            f"output dir {output} is not writable: {describe_os_error(exc)}; {hint}"
        ) from None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _process_start(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _alive(holder: Mapping[str, Any]) -> bool:
    """Whether the lock's process (on this host) still runs: not a reused pid or zombie."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: trust kill()
    if fields[0] in ("Z", "X"):
        return False
    started = holder.get("pid_start")
    return started is None or started == _process_start(pid)


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The lock file's JSON object; None when empty; ``{}`` when unreadable."""
    try:
        raw = os.pread(fd, 65536, 0)
    except OSError:
        return {}
    if not raw.strip():
        return None
    try:
        holder = json.loads(raw)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _in_use(output: Path, lock: Path, holder: Mapping[str, Any] | None) -> str:
    if not holder:
        return (
            f"output dir {output} is in use by another vlmhb run (lock file {lock}); "
            "wait for it or use another --vlmhb-output"
        )
    message = (
        f"output dir {output} is in use by pid {holder.get('pid')} on host "
        f"{holder.get('host')} since {holder.get('started')}; wait for it or use "
        "another --vlmhb-output"
    )
    if holder.get("host") != socket.gethostname():
        message += f" (if that run is gone, delete {lock})"
    return message


class OutputLock:
    """Exclusive use of an output dir by one run (the controller; workers share it).

    The lock file ``<output>/.vlmhb.lock`` holds JSON {pid, host, started,
    argv, ...} for the messages, and an ``flock`` on it is held until
    :meth:`release` or the process's death. A lock nobody holds is taken
    over when it names this host and a process that no longer runs; one
    naming another host is never taken over (its liveness cannot be seen).
    """

    def __init__(self, path: Path, fd: int, info: dict[str, Any], took_over: str | None) -> None:
        self.path = path
        self.info = info
        #: A message when a dead run's lock was taken over, else None.
        self.took_over = took_over
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, output: Path) -> OutputLock:
        """Lock ``output`` (created if missing); ``ConfigError`` when another run has it."""
        path = output / LOCK_NAME
        try:
            output.mkdir(parents=True, exist_ok=True)
            for _ in range(10):
                lock = cls._try(output, path)
                if lock is not None:
                    return lock
        except OSError as exc:
            raise ConfigError(
                f"cannot lock output dir {output} ({path}): {describe_os_error(exc)}"
            ) from None
        raise OutputLockedError(
            f"output dir {output}: the lock file {path} keeps being "
            "replaced by another run; use another --vlmhb-output"
        )

    @classmethod
    def _try(cls, output: Path, path: Path) -> OutputLock | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputLockedError(_in_use(output, path, _read_holder(fd))) from None
            except OSError:
                pass  # no flock on this file system: the file's content decides alone
            try:
                replaced = os.fstat(fd).st_ino != path.stat().st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:  # released and removed by its holder meanwhile: retry
                os.close(fd)
                return None
            took_over = cls._check_stale(output, path, _read_holder(fd))
            host = socket.gethostname()
            info = {
                "pid": os.getpid(),
                "host": host,
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "argv": [redact(a) for a in sys.argv],
                "pid_start": _process_start(os.getpid()),
                "token": secrets.token_hex(8),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return cls(path, fd, info, took_over)

    @staticmethod
    def _check_stale(output: Path, path: Path, holder: dict[str, Any] | None) -> str | None:
        """None for a fresh lock file, a message for a dead run's; raises for a live one."""
        if holder is None:
            return None
        if not holder:
            return f"replaced the unreadable lock file {path}"
        same_host = holder.get("host") == socket.gethostname()
        if not same_host or (holder.get("pid") != os.getpid() and _alive(holder)):
            raise OutputLockedError(_in_use(output, path, holder))
        return (
            f"took over the lock of output dir {output} left by pid {holder.get('pid')} "
            f"on this host (started {holder.get('started')}), which no longer runs"
        )

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the dir back: the lock file is removed if it is still ours. Idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError, ValueError):
                current = json.loads(self.path.read_bytes())
                if isinstance(current, dict) and current.get("token") == self.info["token"]:
                    self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
