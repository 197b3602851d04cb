import errno
import os
import subprocess
import sys
import textwrap

import pytest

from dopatut.foundations import cache
from dopatut.study import pipeline
from dopatut.foundations.cache import CacheError, check_writable, training_lock
from dopatut.foundations.model import MLPConfig
from dopatut.study.pipeline import FoundationSpec, foundation, foundation_path
from dopatut.training.train import TrainConfig

SPEC = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=1024))


def _no_training(*args, **kwargs):
    raise AssertionError("trained although the cache cannot be written")


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_unwritable_cache_fails_before_training(tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    path = blocker if where == "a file" else blocker / "cache"
    monkeypatch.setenv("DOPATUT_CACHE", str(path))
    monkeypatch.setattr(pipeline, "_train_foundations", _no_training)
    with pytest.raises(CacheError, match=rf"DOPATUT_CACHE = '{path}' cannot be written.*nothing was trained"):
        foundation(0, SPEC, progress=False)


def test_read_only_cache_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(cache.tempfile, "NamedTemporaryFile", refuse)  # root may write anywhere, so simulate it
    with pytest.raises(CacheError, match="DOPATUT_CACHE.*PermissionError: Permission denied"):
        check_writable()


def test_default_cache_is_named_when_the_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("DOPATUT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home-is-a-file"))
    (tmp_path / "home-is-a-file").write_text("")
    with pytest.raises(CacheError, match="DOPATUT_CACHE is not set"):
        check_writable()


def test_lock_is_reentrant_in_one_process():
    lock = training_lock()
    with lock:
        with training_lock():
            assert lock.is_locked
        assert lock.is_locked
    assert not lock.is_locked


_CHILD = textwrap.dedent("""
    from dopatut.foundations.model import MLPConfig
    from dopatut.study.pipeline import FoundationSpec, foundation
    from dopatut.training.train import TrainConfig
    foundation(0, FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=1024)))
    print("finished")
""")


def _start(env):
    return subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_processes_on_an_empty_cache_train_one_foundation(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first, second = _start(env), _start(env)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert all("finished" in out for out in outputs), outputs
    loaded = ["loaded from the cache" in out for out in outputs]
    assert sorted(loaded) == [False, True], outputs  # one trained, the other waited and loaded
    assert [p.name for p in (tmp_path / "cache").glob("foundation-*.pt")] == [foundation_path(SPEC, 0).name]


def test_a_waiting_process_says_so_and_loads_what_the_holder_saved(tmp_path):
    with training_lock():
        child = _start({**os.environ, "OMP_NUM_THREADS": "1"})
        first = child.stdout.readline()  # blocks until the child has found the lock taken
        assert first.startswith("waiting for another process"), first
        foundation(0, SPEC, progress=False)  # trains and saves while holding the lock
        mtime = foundation_path(SPEC, 0).stat().st_mtime_ns
    out = child.communicate(timeout=300)[0]
    assert "loaded from the cache" in out and "finished" in out, out
    assert foundation_path(SPEC, 0).stat().st_mtime_ns == mtime  # the child did not train it again


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_trained_foundation_in_memory(tmp_path, monkeypatch):
    from dopatut.foundations import checkpoints
    from dopatut.foundations.cache import CacheFullWarning

    monkeypatch.setattr(checkpoints.os, "fsync", _disk_full)  # the writer fails as on a full disk, after training
    with pytest.warns(CacheFullWarning) as record:
        model = foundation(0, SPEC, progress=False)
    text = str(record[0].message)
    path = foundation_path(SPEC, 0)
    assert "DOPATUT_CACHE" in text and str(cache.cache_dir()) in text and path.name in text, text
    assert "could not be kept" in text and "export DOPATUT_CACHE=" in text, text
    assert not path.exists() and not list(path.parent.glob("*.tmp"))  # nothing half-written left behind
    monkeypatch.setattr(pipeline, "_train_foundations", _no_training)
    assert foundation(0, SPEC, progress=False) is model  # the rest of the session reads it from memory


def test_a_full_disk_keeps_results_in_memory(monkeypatch):
    from dopatut.foundations import checkpoints
    from dopatut.study import compare
    from dopatut.foundations.cache import CacheFullWarning

    calls = []
    monkeypatch.setattr(checkpoints.os, "fsync", _disk_full)
    with pytest.warns(CacheFullWarning, match="the results x-.*could not be kept in the cache: DOPATUT_CACHE"):
        assert compare._cached("x", {"k": 1}, lambda: calls.append(1) or [1, 2]) == [1, 2]
    assert compare._cached("x", {"k": 1}, lambda: calls.append(1) or [3]) == [1, 2] and calls == [1]


def test_other_write_errors_are_not_taken_for_a_full_disk(monkeypatch):
    from dopatut.foundations import checkpoints

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(checkpoints.os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error"):
        foundation(0, SPEC, progress=False)
