"""Run the MOLENV_CLASSIFY regression tests (what `make regtest` calls).

    .venv/bin/python regtest/run.py [TEST ...]

Each test is a directory regtest/rt-*/ holding a PLUMED input `plumed.dat`, a small
trajectory, model files, a `config` file and reference outputs `<file>.reference`.
The test's files are copied into <test>/tmp/ (with `@MOLENV_LIB@` in the inputs
replaced by the compiled module's path), `plumed driver` is run there with the
arguments of `arg=` in config (through molenv.plumed.kernel.run_plumed, i.e. the kernel
the module was built against), and every `<file>.reference` is compared with
`tmp/<file>` by regtest/compare.py with the config's rtol/atol.  Differences are
reported with file, line, column, values and tolerance; the exit status is non-zero
when any test fails.  The references are made by regtest/generate.py from an
independent brute-force implementation, not from the action's own output.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "py"))

from compare import compare_files  # noqa: E402
from molenv.plumed.kernel import module_path, run_plumed  # noqa: E402

PLACEHOLDER = "@MOLENV_LIB@"


def read_config(path: Path) -> dict:
    config = {"rtol": "1e-9", "atol": "1e-11"}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


def prepare(test: Path, lib: Path) -> Path:
    tmp = test / "tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for f in test.iterdir():
        if f.is_file() and f.name != "config" and not f.name.endswith(".reference"):
            if f.suffix == ".dat":
                (tmp / f.name).write_text(f.read_text().replace(PLACEHOLDER, str(lib)))
            else:
                shutil.copy(f, tmp / f.name)
    return tmp


def run_test(test: Path, lib: Path, verbose: bool = False) -> list[str]:
    config = read_config(test / "config")
    tmp = prepare(test, lib)
    args = shlex.split(config["arg"])
    with open(tmp / "log", "w") as log:
        proc = run_plumed(["driver", *args], cwd=tmp, stdout=log, stderr=log)
    if proc.returncode != 0:
        tail = "\n".join((tmp / "log").read_text().splitlines()[-15:])
        return [f"plumed driver exited with status {proc.returncode}; end of {tmp / 'log'}:\n{tail}"]
    problems = []
    references = sorted(test.glob("*.reference"))
    if not references:
        problems.append(f"{test}: no reference files")
    for ref in references:
        out = tmp / ref.name[: -len(".reference")]
        problems += compare_files(out, ref, float(config["rtol"]), float(config["atol"]))
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run the MOLENV_CLASSIFY regression tests")
    p.add_argument("tests", nargs="*", help="test directories (default: all regtest/rt-*)")
    args = p.parse_args(argv)
    lib = module_path()
    tests = [HERE / t if not Path(t).is_absolute() else Path(t) for t in args.tests] or sorted(
        d for d in HERE.glob("rt-*") if (d / "config").exists()
    )
    failed = []
    for test in tests:
        start = time.time()
        problems = run_test(test.resolve(), lib)
        status = "FAIL" if problems else "ok"
        print(f"{status:4s} {test.name} ({time.time() - start:.1f} s)")
        for msg in problems:
            print("     " + msg.replace("\n", "\n     "))
        if problems:
            failed.append(test.name)
    print(f"{len(tests) - len(failed)}/{len(tests)} regression tests passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
