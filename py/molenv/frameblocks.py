"""Frames split into contiguous blocks and the blocks run on worker processes: the one
scheduler of the commands that are parallel over frames (`molenv classify`,
`molenv reanalyse`, `molenv featurize`).

A trajectory's frames (file indices, in order) are cut into contiguous blocks
(`frame_blocks`: 4 per worker by default, so that a slow block does not leave the other
workers idle at the end); a function of one block runs on the workers of a backend
(`block_backend`: MDAnalysis' analysis backends, whose ``apply(func, blocks)`` returns the
results in block order, plus `DaskDistributedBackend` for the workers of a dask.distributed
cluster), and the caller joins the results in block order, so that the result is that of the
serial run. Each block opens the trajectory itself: a worker reads only its own frames and
no frame travels between processes.

Backends: ``serial`` (one process), ``multiprocessing`` (local processes, fork),
``dask`` (local dask processes; with a scheduler address ``tcp://host:8786``, the workers
of that dask.distributed cluster, which need molenv and the files at the same paths).
"""
from __future__ import annotations

import numpy as np
from MDAnalysis.analysis.backends import BackendBase, BackendDask, BackendMultiprocessing, BackendSerial

__all__ = ["BACKENDS", "BLOCKS_PER_WORKER", "check_backend", "frame_blocks", "block_backend", "run_blocks", "DaskDistributedBackend",
           "MultiprocessingWithProgress"]

BACKENDS = ("serial", "multiprocessing", "dask")
BLOCKS_PER_WORKER = 4


def check_backend(backend: str, n_workers: int, scheduler: str | None, error: type[Exception] = ValueError) -> None:
    """``error`` naming the problem for an unknown backend, a scheduler address without the
    dask backend, dask not installed, or fewer than one worker."""
    if backend not in BACKENDS:
        raise error(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if scheduler is not None and backend != "dask":
        raise error(f"a dask scheduler address needs backend 'dask', not {backend!r}")
    if backend == "dask":
        try:
            import dask  # noqa: F401

            if scheduler is not None:
                import dask.distributed  # noqa: F401
        except ImportError:
            raise error("the dask backend needs dask: pip install 'dask[distributed]' (or use --backend multiprocessing)") from None
    if n_workers < 1:
        raise error(f"n_workers must be >= 1, got {n_workers}")


def frame_blocks(frames, n_workers: int, per_worker: int = BLOCKS_PER_WORKER) -> list[np.ndarray]:
    """The frame indices `frames` cut into at most ``per_worker x n_workers`` contiguous
    blocks of nearly equal length, in order (none empty)."""
    frames = np.asarray(frames, dtype=np.int64)
    n = int(min(len(frames), per_worker * max(1, n_workers)))
    return [block for block in np.array_split(frames, max(n, 1)) if len(block)]


class MultiprocessingWithProgress(BackendMultiprocessing):
    """`BackendMultiprocessing` with a progress bar over the blocks as they finish."""

    def __init__(self, n_workers: int, desc: str = "blocks"):
        self.desc = desc
        super().__init__(n_workers=n_workers)

    def apply(self, func, computations):
        from multiprocessing import Pool

        from tqdm.auto import tqdm

        with Pool(processes=self.n_workers) as pool:
            return list(tqdm(pool.imap(func, computations), total=len(computations), unit="part", desc=self.desc))


class DaskDistributedBackend(BackendBase):
    """Blocks on a dask.distributed cluster: they go to the scheduler at `address`
    (``tcp://host:8786``, as printed by ``dask scheduler``) with ``Client.map`` and come back
    in order. MDAnalysis' own dask backend runs local processes only."""

    def __init__(self, address: str, n_workers: int):
        self.address = address
        super().__init__(n_workers=n_workers)

    def apply(self, func, computations):
        from dask.distributed import Client

        with Client(self.address) as client:
            return client.gather(client.map(func, computations, pure=False))


def block_backend(backend: str, n_workers: int, scheduler: str | None = None, *, progress: bool = False, desc: str = "blocks") -> BackendBase:
    """The MDAnalysis backend object that runs one function per block (see the module
    docstring); ``progress`` shows a bar over the blocks with local processes."""
    if backend == "serial":
        return BackendSerial(n_workers=1)
    if backend == "multiprocessing":
        return MultiprocessingWithProgress(n_workers, desc) if progress else BackendMultiprocessing(n_workers=n_workers)
    if scheduler is not None:
        return DaskDistributedBackend(scheduler, n_workers)
    return BackendDask(n_workers=n_workers)


def run_blocks(func, jobs: list, backend: str, n_workers: int, scheduler: str | None = None, *, progress: bool = False, desc: str = "blocks") -> list:
    """``[func(job) for job in jobs]``, on the workers of `backend`, in the order of `jobs`."""
    if backend == "serial":
        return [func(job) for job in jobs]
    return list(block_backend(backend, n_workers, scheduler, progress=progress, desc=desc).apply(func, jobs))
