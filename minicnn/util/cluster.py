"""Running independent tasks on a Dask cluster (``dask.distributed``): local processes or a scheduler.

    cluster = Cluster(workers=2)                              # a local cluster of 2 worker processes
    cluster = Cluster(scheduler="tcp://10.0.0.5:8786")        # an existing scheduler and its workers
    results = run_tasks([(function, args_0), (function, args_1), ...], cluster=cluster, sizes=[10, 10, ...],
                        names=["images 0-9", "images 10-19", ...], label="scorecard", unit="images")

Each task is ``function(*args)`` (a function of a module, which the
workers import); the results come back in the order of the tasks,
whatever the order the workers finish them in. Dask is optional
(``pip install minicnn[distributed]``): it is imported only here, only when
a cluster is asked for, so a serial run never loads it.

- A local cluster has ``workers`` processes of one thread each, and each
  holds BLAS to one thread (OMP/OPENBLAS/MKL_NUM_THREADS=1 in its
  environment, and threadpoolctl around each task): the processes are the
  parallelism, and threads on top would compete for the same cores.
- The progress bar (:class:`minicnn.util.progress.Progress`) counts the
  tasks' ``sizes`` as the tasks finish; the workers draw none.
- A task that raises is retried ``retries`` times; if it still fails the
  run stops with one line (:class:`ClusterError`) naming the task
  (``names``) and the error. A worker that dies mid-run (killed, out of
  memory) is not an error: the scheduler gives its tasks to other workers
  (the nanny of a local cluster starts a new one).
- ``on_result(i, result)`` is called in the client as each task finishes
  (a cache keeps each finished chunk at once, so an interrupted run loses
  only the tasks that were running).
- A scheduler that cannot be reached within ``timeout`` seconds is one line
  (:class:`ClusterError`), not a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import InputError, MinicnnError, MissingDependencyError, one_line
from .progress import Progress, watching

#: The environment of a local cluster's worker processes: BLAS and OpenMP held to one thread.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
#: The most local worker processes (a cost a flag can set: each is a Python process and its memory).
MAX_WORKERS = 256


class ClusterError(MinicnnError, RuntimeError):
    """The cluster could not be reached, or a task failed after its retries."""


@dataclass(frozen=True)
class Cluster:
    """Where to run: ``workers`` local processes, or the scheduler at ``scheduler`` (one of the two).

    chunk: images per task; cache: a folder of finished chunks (:mod:`minicnn.util.chunkcache`) or None;
    retries: how often a failing task is tried again; timeout: seconds to reach the scheduler.
    """

    workers: int | None = None
    scheduler: str | None = None
    chunk: int = 10
    cache: str | None = None
    retries: int = 1
    timeout: float = 5.0

    def __post_init__(self):
        if (self.workers is None) == (self.scheduler is None):
            raise InputError("give either a number of local workers or a scheduler address, not both")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or not 1 <= self.workers <= MAX_WORKERS):
            raise InputError(f"the number of workers must be an integer from 1 to {MAX_WORKERS}; got {self.workers!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise InputError(f"the chunk size must be a positive integer; got {self.chunk!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise InputError(f"retries must be an integer from 0 to 10; got {self.retries!r}")

    def where(self) -> str:
        return f"the Dask scheduler at {self.scheduler}" if self.scheduler else f"{self.workers} local Dask workers"


def _import_distributed():
    try:
        import distributed  # lazy: Dask is optional (the distributed extra), loaded only for a cluster
    except ImportError:
        raise MissingDependencyError("--workers and --scheduler need Dask: pip install 'minicnn[distributed]' "
                                     "(dask and distributed)") from None
    return distributed


@contextmanager
def client_for(cluster: Cluster):
    """A ``distributed.Client`` of the cluster, closed (and a local cluster shut down) after the block."""
    distributed = _import_distributed()
    import dask  # lazy: as above

    if cluster.scheduler is not None:
        try:
            client = distributed.Client(cluster.scheduler, timeout=f"{cluster.timeout}s", set_as_default=False)
        except Exception as e:                      # OSError, TimeoutError, ValueError for a malformed address
            raise ClusterError(f"cannot reach the Dask scheduler at {cluster.scheduler!r} within "
                               f"{cluster.timeout:g} s: {one_line(e)}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with dask.config.set({"distributed.nanny.pre-spawn-environ": ONE_THREAD}):
        local = distributed.LocalCluster(n_workers=cluster.workers, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None, silence_logs=50)
    client = distributed.Client(local, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        local.close()


def one_blas_thread(function, *args):
    """function(*args) on a worker: BLAS held to one thread (threadpoolctl), no progress bar drawn (the
    client draws one for the tasks; a method's own bar on a worker's stderr would only interleave)."""
    from threadpoolctl import threadpool_limits  # lazy: only a worker's task needs it
    with threadpool_limits(limits=1), watching(quiet=True):
        return function(*args)


def run_tasks(tasks: Sequence[tuple[Callable, tuple]], *, cluster: Cluster, sizes: Sequence[int],
              names: Sequence[str], label: str = "tasks", unit: str = "", progress: bool = True,
              on_result: Callable[[int, object], None] | None = None, client=None) -> list:
    """[function(*args) for function, args in tasks], computed on the cluster (module docstring), in task order."""
    if not tasks:
        return []
    if client is None:
        with client_for(cluster) as own:
            return run_tasks(tasks, cluster=cluster, sizes=sizes, names=names, label=label, unit=unit,
                             progress=progress, on_result=on_result, client=own)
    distributed = _import_distributed()
    futures = [client.submit(one_blas_thread, function, *args, pure=False, retries=cluster.retries)
               for function, args in tasks]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(tasks)
    with Progress(sum(sizes), label, unit=unit, enabled=progress) as bar:
        try:
            for future in distributed.as_completed(futures, loop=client.loop):
                i = index[future.key]
                try:
                    results[i] = future.result()
                except Exception as e:
                    raise ClusterError(f"the task on {names[i]} failed after {cluster.retries + 1} "
                                       f"tr{'y' if cluster.retries == 0 else 'ies'} on {cluster.where()}: "
                                       f"{one_line(e)}") from None
                if on_result is not None:
                    on_result(i, results[i])
                bar.update(sizes[i])
        finally:
            for f in futures:
                f.release()
    return results

