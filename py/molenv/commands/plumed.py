"""Run the PLUMED command-line tool (e.g. `molenv plumed driver ...`) with the environment
the kernel that MOLENV_CLASSIFY was compiled against needs.

Everything after `plumed` is passed to PLUMED unchanged. SIGINT, SIGTERM, SIGHUP and
SIGQUIT sent to molenv are passed on to plumed (and plumed gets SIGTERM should molenv die
without passing it on, e.g. by kill -9); a plumed killed by a signal is reported by the
signal's name, with exit status 128 + the signal number, as shells do."""
import argparse
import os
import signal
import subprocess
import sys

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def add_arguments(parser):
    parser.add_argument("plumed_args", nargs=argparse.REMAINDER, help="arguments for plumed")


def _parent_death_signal():
    """A function for the child (between fork and exec) that makes Linux send it SIGTERM
    when this process dies; None where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def child():
        prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the call
            os._exit(128 + int(signal.SIGTERM))

    return child


def run_child(argv: list[str], env: dict | None = None, name: str = "plumed") -> int:
    """Run `argv`, passing on the signals of `FORWARDED`; its exit status, or 128 + the
    signal that killed it (reported on stderr by the signal's name)."""
    state = {"proc": None, "pending": []}

    def forward(signum, frame):
        proc = state["proc"]
        if proc is None:
            state["pending"].append(signum)
            return
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    import threading

    previous = {}
    try:
        if threading.current_thread() is threading.main_thread():  # only there can Python handle signals
            for s in FORWARDED:
                previous[s] = signal.signal(s, forward)
        state["proc"] = proc = subprocess.Popen(argv, env=env, preexec_fn=_parent_death_signal())
        for signum in state["pending"]:  # arrived while it was being started
            proc.send_signal(signum)
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = f"signal {-code}"
        print(f"molenv plumed: {name} was killed by {signame}", file=sys.stderr, flush=True)
        return 128 - code
    return code


def passthrough(plumed_args: list[str]) -> int:
    from molenv.plumed.kernel import PlumedNotFound, installed

    try:
        install = installed()
        return run_child([install.executable, *plumed_args], env=install.environment())
    except (PlumedNotFound, OSError) as err:
        print(f"molenv plumed: error: {err}", file=sys.stderr, flush=True)
        return 2


def run(args):
    return passthrough(args.plumed_args)
