"""Independent jobs on every core at once: worker processes of one thread each.

    results = run_jobs(train_one_arm, [{"arm": "dopamine"}, {"arm": "lora_attn"}, ...])

Stacking (dopatut.training.stack) batches models of one shape into one run. Jobs that cannot share a stack, such as
the arms of chapter 9 (each a different method), would otherwise run one after another, each on all cores.
The transformer's small products use a second thread poorly: on two cores an arm trains in about 5.3 s on
one thread and 4.1 s on two, so two arms side by side, in two processes of one thread, take 5.3 s instead
of 8.2 s.

`run_jobs` keeps a pool of worker processes for the session, gives each job to the next free worker and
returns the results in the order of the jobs. Every job runs on threads // workers threads wherever it runs,
so it gives the same numbers whichever worker takes it (they may differ from the same job run here on all
threads by float rounding). DOPATUT_WORKERS sets the number of workers (default: one per thread torch may use,
so one per core, or OMP_NUM_THREADS). A single job,
or every job where there is one worker or the jobs are on a GPU (a model or a device in a job that is not the
CPU's: one process keeps the GPU busy, and workers would each hold a CUDA context), runs here, on as many threads as a worker has. Measured on two
cores: the learning-rate grids and the arms of chapter 9 run 1.4-1.5x faster, its two transformer foundations
1.1x (they were a stack of two).
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import torch
from tqdm.auto import tqdm

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_in_worker = False


def worker_count() -> int:
    """How many workers the pool has: DOPATUT_WORKERS, else one per thread this process may use (torch's
    threads: one per core, or OMP_NUM_THREADS)."""
    value = os.environ.get("DOPATUT_WORKERS", "")
    if not value:
        return torch.get_num_threads()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"DOPATUT_WORKERS must be a positive integer, got {value!r}")
    return int(value)


def job_threads() -> int:
    """The threads every job runs on, in a worker or here: this process's threads shared among the workers."""
    return max(1, torch.get_num_threads() // worker_count())


def _start_worker(threads: int) -> None:
    global _in_worker
    torch.set_num_threads(threads)
    _in_worker = True  # a job that calls run_jobs runs those jobs in place, on its own threads


def _shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(cancel_futures=True)
        _pool = None


def _get_pool(size: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != size:
        _shutdown()
        # Linux forks (quick, shares the loaded data, and a script needs no main guard); elsewhere fork is
        # unsafe, and spawn starts each worker as a fresh Python that imports the script's main module again
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        _pool = ProcessPoolExecutor(size, mp_context=multiprocessing.get_context(method),
                                    initializer=_start_worker, initargs=(job_threads(),))
        _pool_size = size
    return _pool


atexit.register(_shutdown)


def on_accelerator(jobs: list[dict]) -> bool:
    """Whether any job's "device", or a model or tensor it holds, is not the CPU."""
    for job in jobs:
        for name, value in job.items():
            if isinstance(value, torch.nn.Module):
                value = next(value.parameters(), torch.empty(0)).device
            elif isinstance(value, torch.Tensor):
                value = value.device
            elif name != "device" or value is None:
                continue
            if torch.device(value).type != "cpu":
                return True
    return False


def in_threads(fn, threads: int, job: dict):
    """fn(**job) on `threads` torch threads: a job gives the same numbers on any worker of the same CPU kind."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(**job)
    finally:
        torch.set_num_threads(before)


def run_jobs(fn, jobs: list[dict], desc: str | None = None, progress: bool = True, executor=None) -> list:
    """[fn(**job) for job in jobs], run on worker processes where there are several cores.

    fn must be importable (a function of a module, not of a notebook), and jobs' values picklable.
    executor: any concurrent.futures.Executor to run the jobs on instead, such as a Dask cluster's
    (distributed.Client(address).get_executor()); each job runs on the threads it would have here
    (job_threads()), so its numbers are the same as here on a machine of the same CPU kind.
    """
    jobs = list(jobs)
    size = worker_count()
    bar = tqdm(total=len(jobs), desc=desc or getattr(fn, "__name__", "jobs"), disable=not progress)
    if executor is not None:
        futures = {executor.submit(in_threads, fn, job_threads(), job): i for i, job in enumerate(jobs)}
        results = [None] * len(jobs)
        for future in as_completed(futures):
            results[futures[future]] = future.result()  # a job's error is raised here
            bar.update(1)
        bar.close()
        return results
    if _in_worker or size == 1 or len(jobs) <= 1 or on_accelerator(jobs):  # no pool for one job, none, or a GPU
        threads, results = torch.get_num_threads(), []
        torch.set_num_threads(threads if _in_worker else job_threads())  # as in a worker: the same numbers
        try:
            for job in jobs:
                results.append(fn(**job))
                bar.update(1)
        finally:
            torch.set_num_threads(threads)
    else:
        pool = _get_pool(size)
        futures = {pool.submit(fn, **job): i for i, job in enumerate(jobs)}
        results = [None] * len(jobs)
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()  # a job's error is raised here, with its traceback
                bar.update(1)
        except BrokenProcessPool as err:
            _shutdown()
            raise RuntimeError("a worker process died before its job was done (out of memory? on macOS or Windows, "
                               "a script that runs jobs needs `if __name__ == '__main__':`); set DOPATUT_WORKERS=1 "
                               "to run the jobs in this process") from err
    bar.close()
    return results
