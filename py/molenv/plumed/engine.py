"""Loading the PLUMED kernel that `MOLENV_CLASSIFY` was compiled against, starting PLUMED,
handing it a step's data, and PLUMED's error messages, for every place that drives PLUMED
through its Python interface: `molenv reanalyse` (`molenv.plumed.reanalysis.PlumedFeeder`,
frames from a file), `molenv simulate --plumed` (`molenv.plumed.openmm_bridge.PlumedBias`, a
bias inside OpenMM) and the reading of an input's atom lists (`molenv.plumed.inputs`).
"""
from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

__all__ = ["PlumedError", "load_plumed", "start_plumed", "share_step", "plumed_message"]


class PlumedError(RuntimeError):
    """PLUMED could not be loaded, could not start or stopped; the message says why."""


def load_plumed(error: type[Exception] = PlumedError):
    """The `plumed` Python module and the kernel path of the installation the module was
    compiled against (`molenv.plumed.kernel.installed`); problems raise ``error``.

    The kernel is loaded into the process with ``RTLD_GLOBAL`` first: the Python wrapper
    opens it with local symbols, and a ``LOAD``-ed module (``libmolenv_plumed.so``) needs the
    kernel's symbols to resolve.
    """
    from molenv.plumed.kernel import installed

    kernel = installed().kernel
    if not Path(kernel).is_file():
        raise error(f"the PLUMED kernel {kernel} (recorded in molenv/_lib/plumed_install.json) is missing; run `make module`")
    os.environ["PLUMED_KERNEL"] = kernel  # `import plumed` of the bundled wheel only sets it where unset
    try:
        ctypes.CDLL(kernel, mode=os.RTLD_GLOBAL | os.RTLD_NOW)
    except OSError as err:
        raise error(f"cannot load the PLUMED kernel {kernel}: {err}") from None
    try:
        import plumed
    except ImportError:
        raise error("the PLUMED Python interface is missing: pip install --no-deps hillclimber (or the `plumed` package of your PLUMED)") from None
    return plumed, kernel


def start_plumed(plumed, kernel: str, settings) -> object:
    """A PLUMED instance of ``kernel``, given the (command, value) pairs of ``settings``
    (engine, units, timestep, log, input...) and then initialised; PLUMED's exceptions pass."""
    p = plumed.Plumed(kernel=kernel)
    for key, value in settings:
        p.cmd(key, value)
    p.cmd("init")
    return p


def share_step(p, step: int, positions, cell, masses, charges, forces, virial) -> None:
    """Hand PLUMED one step's data (``cell`` None: no box); ``forces`` and ``virial`` are
    zeroed here and receive PLUMED's bias contributions at the next calculation."""
    forces[:] = 0.0
    virial[:] = 0.0
    p.cmd("setStep", int(step))
    if cell is not None:
        p.cmd("setBox", cell)
    p.cmd("setMasses", masses)
    p.cmd("setCharges", charges)
    p.cmd("setPositions", positions)
    p.cmd("setForces", forces)
    p.cmd("setVirial", virial)


def plumed_message(err: Exception, log: str | Path | None = None) -> str:
    """What went wrong, in PLUMED's words: the Python wrapper only passes on the outermost of
    PLUMED's nested exceptions ("An error happened while calculating c"), the log has them all."""
    def useful(lines):
        # drop source locations, separators and the chaining sentence; keep the messages, in order
        out = []
        for l in (l.strip() for l in lines):
            if l and not re.match(r"^\(.*\.(cpp|h):\d+\)", l) and not l.startswith("####") and "exception was the direct cause" not in l and l not in out:
                out.append(l)
        return out

    messages = useful(str(err).splitlines())
    if log is not None and Path(log).is_file():
        text = [l[len("PLUMED:"):] if l.startswith("PLUMED:") else l for l in Path(log).read_text(errors="replace").splitlines()]
        marks = [k for k, l in enumerate(text) if l.strip().startswith("####")]
        if len(marks) >= 2:
            messages = useful(text[marks[-2] + 1 : marks[-1]]) or messages
    return " ".join(messages) or type(err).__name__
