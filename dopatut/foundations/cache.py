"""Where trained foundations and results are kept, safe to share between notebooks running at once.

    cache_dir()                 # $DOPATUT_CACHE, else ~/.cache/dopatut
    check_writable()            # before training: a clear error now rather than a lost model later
    with training_lock():       # one process trains what is missing; the others wait, then load it
        ...
    keep(path, write, value, "the foundation")   # a full disk: a warning, and `value` kept in memory
    remembered(path)            # what keep() could not write, for the rest of the session

Two notebooks that need the same foundation used to both train it. Now the first takes the lock, the
second waits (it says so) and then finds the foundation on disk. The lock is reentrant within a process,
so code that holds it may call code that takes it again.

Several processes on one machine share its cores: torch starts as many threads as there are cores in
each, and two such processes slow each other several-fold. Give each process its share with
OMP_NUM_THREADS (e.g. 1 for two notebooks on two cores), set before Python starts; see the README.
"""
from __future__ import annotations

import errno
import os
import tempfile
import warnings
from pathlib import Path

from filelock import FileLock, Timeout

_LOCKS: dict[str, FileLock] = {}
_MEMORY: dict[str, object] = {}  # path -> what could not be written there (a full disk), for this session
_FULL = (errno.ENOSPC, errno.EDQUOT)


class CacheError(RuntimeError):
    """The cache folder cannot be used (it cannot be created or written)."""


class CacheFullWarning(UserWarning):
    """Something trained could not be kept in the cache: its disk is full. It is kept in memory instead."""


def cache_dir() -> Path:
    """$DOPATUT_CACHE, else ~/.cache/dopatut."""
    return Path(os.environ.get("DOPATUT_CACHE", Path.home() / ".cache" / "dopatut"))


def check_writable() -> Path:
    """The cache folder, created if needed; a CacheError naming DOPATUT_CACHE and the path if it cannot be written."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        where = "DOPATUT_CACHE" if "DOPATUT_CACHE" in os.environ else "the default cache (DOPATUT_CACHE is not set)"
        raise CacheError(f"{where} = {str(path)!r} cannot be written ({type(err).__name__}: {err.strerror or err}); "
                         "nothing was trained. Set DOPATUT_CACHE to a folder you can write, e.g. export "
                         "DOPATUT_CACHE=/tmp/dopatut (foundation(..., cache=False) keeps a foundation in memory only)"
                         ) from err
    return path


def _where() -> str:
    return "DOPATUT_CACHE" if "DOPATUT_CACHE" in os.environ else "the default cache (DOPATUT_CACHE is not set)"


def keep(path, write, value, what: str) -> None:
    """write() `path` into the cache; if its disk is full (ENOSPC, EDQUOT), warn, naming DOPATUT_CACHE and the
    path, and keep `value` in memory for this session (remembered(path)), so the training is not lost."""
    try:
        write()
    except OSError as err:
        if err.errno not in _FULL:
            raise
        _MEMORY[str(path)] = value
        warnings.warn(f"{what} could not be kept in the cache: {_where()} = {str(cache_dir())!r} has no room "
                      f"({err.strerror or err}) for {Path(path).name}. It is kept in memory for this session only "
                      "and will be trained again in the next one. Free some space there, or point DOPATUT_CACHE at "
                      "a folder with room (e.g. export DOPATUT_CACHE=/tmp/dopatut) before Python starts.",
                      CacheFullWarning, stacklevel=3)


def remembered(path):
    """What keep() held in memory for `path` because the disk was full, or None."""
    return _MEMORY.get(str(path))


def training_lock() -> FileLock:
    """The cache's lock (reentrant in this process). Hold it while training anything the cache will keep."""
    path = str(check_writable() / ".training.lock")
    if path not in _LOCKS:
        _LOCKS[path] = _WaitingLock(path)
    return _LOCKS[path]


class _WaitingLock(FileLock):
    """A FileLock that says so when it has to wait for another process."""

    def acquire(self, timeout=None, **kwargs):
        try:
            return super().acquire(timeout=0, **kwargs)
        except Timeout:
            print(f"waiting for another process that is training into {Path(self.lock_file).parent} ...", flush=True)
            return super().acquire(timeout=timeout, **kwargs)
