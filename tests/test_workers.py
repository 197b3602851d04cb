import os

import pytest
import torch

from dopatut.training import workers
from dopatut.foundations.data import mode_data
from dopatut.methods.builtin import apply_method
from dopatut.foundations.model import FoundationMLP, MLPConfig
from dopatut.training.stack import fit_many
from dopatut.training.train import TrainConfig, seed_everything


def train_small(seed: int) -> dict:
    """A job: a small gated MLP trained from a fixed foundation; its trained gates and the process it ran in."""
    seed_everything(100)
    base = FoundationMLP(MLPConfig(hidden=(32, 24)))
    seed_everything(seed)
    model = apply_method(base, "dopamine", verbose=False)
    x, y = mode_data("train", 45, limit=1024)
    fit_many([model], x, y, TrainConfig(epochs=1, batch_size=256, lr=3e-2, seed=seed), progress=False)
    return {"state": {k: v for k, v in model.state_dict().items() if "gate" in k}, "pid": os.getpid(),
            "threads": torch.get_num_threads()}


def fail(message: str):
    raise ValueError(message)


@pytest.fixture
def two_workers(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two cores, as here and in CI
    monkeypatch.setenv("DOPATUT_WORKERS", "2")
    yield
    workers._shutdown()
    torch.set_num_threads(threads)


def test_jobs_run_in_workers_in_order_with_the_numbers_they_give_here(two_workers):
    threads = torch.get_num_threads()
    pooled = workers.run_jobs(train_small, [{"seed": s} for s in (0, 1, 2, 3)], progress=False)
    assert {r["pid"] for r in pooled} - {os.getpid()} and os.getpid() not in {r["pid"] for r in pooled}
    assert all(r["threads"] == 1 for r in pooled)
    for seed, result in zip((0, 1, 2, 3), pooled):
        here = workers.run_jobs(train_small, [{"seed": seed}], progress=False)[0]  # one job runs here
        assert here["pid"] == os.getpid() and here["threads"] == 1
        assert all(torch.equal(result["state"][k], v) for k, v in here["state"].items()), seed
    assert not torch.equal(*(next(iter(r["state"].values())) for r in pooled[:2]))  # other seeds, other gates
    assert torch.get_num_threads() == threads  # a job run here gives the threads back


def test_no_jobs_start_no_workers(two_workers):
    workers._shutdown()
    assert workers.run_jobs(fail, [], progress=False) == [] and workers._pool is None


def test_a_job_s_error_reaches_the_caller(two_workers):
    with pytest.raises(ValueError, match=r"bad job [01]"):
        workers.run_jobs(fail, [{"message": "bad job 0"}, {"message": "bad job 1"}], progress=False)


def test_one_worker_runs_the_jobs_here_on_every_thread(monkeypatch):
    monkeypatch.setenv("DOPATUT_WORKERS", "1")
    threads = torch.get_num_threads()
    results = workers.run_jobs(train_small, [{"seed": 0}, {"seed": 1}], progress=False)
    assert {r["pid"] for r in results} == {os.getpid()}
    assert all(r["threads"] == threads for r in results) and torch.get_num_threads() == threads


def test_the_workers_follow_the_threads_this_process_may_use(monkeypatch):
    monkeypatch.delenv("DOPATUT_WORKERS", raising=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 sets it: one worker, the jobs run here
        assert workers.worker_count() == 1 and workers.job_threads() == 1
        torch.set_num_threads(4)
        assert workers.worker_count() == 4 and workers.job_threads() == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("DOPATUT_WORKERS", value)
    with pytest.raises(ValueError, match=f"DOPATUT_WORKERS must be a positive integer, got '{value}'"):
        workers.run_jobs(fail, [{"message": "never"}], progress=False)


def test_the_comparison_on_a_dask_cluster_gives_the_local_numbers_job_for_job(tmp_path, monkeypatch):
    """Two workers on loopback run one method's grid and ten-seed stack (seeds_job) as they run here."""
    from dataclasses import replace

    import dopatut.study.compare as compare
    from dopatut.foundations.model import MLPConfig
    from dopatut.study.pipeline import FoundationSpec
    from dopatut.study.protocol import Protocol
    distributed = pytest.importorskip("distributed")
    spec = FoundationSpec(model=MLPConfig(hidden=(16, 16)), train=TrainConfig(epochs=1, batch_size=512))
    protocol = Protocol(epochs=1, foundation_epochs=1, batch_size=512, seeds=tuple(range(10)),
                        grids={"head": {"lr": (1e-3, 1e-2)}})
    jobs = [{"method": "head", "spec": spec, "seeds": list(range(10)), "setting": {"lr": lr}, "protocol": protocol,
             "train_limit": 4096} for lr in (1e-3, 1e-2)]  # the grid's two settings, each a ten-seed stack
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path / "here"))
    here = workers.run_jobs(compare.seeds_job, jobs, progress=False)
    monkeypatch.setenv("DOPATUT_CACHE", str(tmp_path / "there"))  # the workers train their own foundations
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        there = workers.run_jobs(compare.seeds_job, jobs, progress=False, executor=client.get_executor())
        monkeypatch.setitem(compare.FOUNDATIONS, "mixture", spec)
        runs = compare.compare("mixture", ("head",), replace(protocol, seeds=(0, 1)), progress=False,
                               executor=client.get_executor())
    accuracy = lambda rows: [r["accuracy"] for r in rows]  # noqa: E731 (seconds differ, of course)
    assert [accuracy(r) for r in there] == [accuracy(r) for r in here]
    assert [r.accuracy for r in runs["head"]] == accuracy(compare.seeds_job(
        "head", spec, [0, 1], compare.select("head", "mixture", replace(protocol, seeds=(0, 1))).chosen,
        replace(protocol, seeds=(0, 1))))
