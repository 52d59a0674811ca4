"""The process that runs one block of `molenv reanalyse` for a dask.distributed worker
(`molenv.plumed.block_reanalysis.run_block_in_child`, which says why): reads a pickled
`BlockJob` on stdin, runs it in the current directory (the block's) and writes the pickled
`BlockResult`, or the exception the block raised, to the file named by its argument.

    python -m molenv.plumed.block_child OUTCOME_FILE < job.pickle
"""
import pickle
import sys
from pathlib import Path

from molenv.plumed.block_reanalysis import run_block_here
from molenv.plumed.reanalysis import ReanalyseError


def main(outcome_file: str) -> None:
    job = pickle.load(sys.stdin.buffer)
    try:
        outcome = run_block_here(job)
    except Exception as err:  # the worker raises it again, so the client sees the error the block had
        outcome = err
    try:
        data = pickle.dumps(outcome)
        pickle.loads(data)
    except Exception:  # an exception that does not pickle (or unpickle): its message
        data = pickle.dumps(ReanalyseError(f"{type(outcome).__name__}: {outcome}"))
    Path(outcome_file).write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1])
