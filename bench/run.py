"""Run the benchmarks (what `make bench` calls): every bench/*.py script, or the ones named.

    .venv/bin/python bench/run.py                          # all benchmarks, default options
    .venv/bin/python bench/run.py plumed_action            # one benchmark
    .venv/bin/python bench/run.py plumed_action -- --sizes 504 --no-openmm   # with its options

Each benchmark runs as its own process with this Python; the exit status is non-zero when
any of them fails. Results and the exact commands are recorded in docs/benchmarks.md.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        print("\navailable: " + ", ".join(available()))
        return 0
    names = [Path(a).stem for a in argv] or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    if extra and len(names) != 1:
        print("options after -- need exactly one benchmark name", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), *extra]
        print(f"### {name}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"### {name}: exit status {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
