"""Where the PLUMED kernel is, where our compiled module is, and how to run `plumed`.

Two kinds of PLUMED installation are supported:

* the user's own PLUMED (2.10 or later): the `plumed` executable named with ``--plumed``
  (`make module PLUMED=...`), else the one found through `PLUMED_KERNEL` or PATH; the module
  is built with that PLUMED's ``plumed mklib`` (its compiler and flags);
* otherwise the PLUMED 2.11 kernel bundled in the PyPI wheel `hillclimber` (its `plumed`
  Python package, installed with ``pip install --no-deps hillclimber``).  Its executable
  needs ``LD_LIBRARY_PATH`` and ``PLUMED_ROOT`` pointing inside the wheel, and its
  ``plumed mklib`` links against a path of the machine that built the wheel, so the module is
  compiled against its headers directly.

The Makefile runs this module from the source tree (``PYTHONPATH=py``, standard library only),
so that `make module` needs no installed dependency: ``install-kernel`` (the bundled kernel,
where the user has no PLUMED), ``kind``/``plumed``/``include-dir`` (how to compile),
``record`` (after compiling) and, in `make install`, ``install-wrapper`` (the `plumed` Python
module for the user's PLUMED).  The choice is recorded next to the compiled module
(``molenv/_lib/plumed_install.json``) so that the module is always loaded by the kernel it was
compiled against (docs/install.md).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parent.parent / "_lib"  # molenv/_lib
MODULE_NAME = "libmolenv_plumed.so"
RECORD_NAME = "plumed_install.json"


class PlumedNotFound(RuntimeError):
    """No usable PLUMED installation."""


@dataclass(frozen=True)
class PlumedInstall:
    kind: str  # "user" or "bundled"
    executable: str  # the `plumed` command-line tool
    kernel: str  # libplumedKernel.so
    include_dir: str  # directory holding core/, tools/, colvar/ ... headers
    env: dict  # extra environment the executable and the kernel need

    def environment(self) -> dict:
        """os.environ plus what this installation needs."""
        env = dict(os.environ)
        for key, value in self.env.items():
            if key == "LD_LIBRARY_PATH" and env.get(key):
                value = value + os.pathsep + env[key]
            env[key] = value
        env["PLUMED_KERNEL"] = self.kernel
        return env


def _bundled_package_dir() -> Path | None:
    spec = importlib.util.find_spec("plumed")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if (Path(location) / "_lib" / "lib" / "libplumedKernel.so").exists():
            return Path(location)
    return None


def _bundled_install() -> PlumedInstall | None:
    pkg = _bundled_package_dir()
    if pkg is None:
        return None
    lib = pkg / "_lib"
    return PlumedInstall(
        kind="bundled",
        executable=str(lib / "bin" / "plumed"),
        kernel=str(lib / "lib" / "libplumedKernel.so"),
        include_dir=str(lib / "include" / "plumed"),
        env={"LD_LIBRARY_PATH": str(lib / "lib"), "PLUMED_ROOT": str(lib / "lib" / "plumed")},
    )


def _user_install(plumed: str | None = None) -> PlumedInstall | None:
    """The user's PLUMED: the executable ``plumed`` if given, else found through PLUMED_KERNEL
    or a `plumed` on PATH."""
    kernel = None
    if plumed:
        exe = shutil.which(plumed)
        if exe is None:
            raise PlumedNotFound(f"{plumed} is not an executable `plumed`")
        exe = os.path.abspath(exe)
    else:
        bundled = _bundled_package_dir()
        kernel = os.environ.get("PLUMED_KERNEL")
        if kernel and bundled is not None and Path(kernel).resolve().is_relative_to(bundled.resolve()):
            kernel = None  # set by `import plumed` of the bundled wheel, not by the user
        exe = shutil.which("plumed")
        if exe is None and kernel:
            candidate = Path(kernel).resolve().parent.parent / "bin" / "plumed"
            exe = str(candidate) if candidate.exists() else None
    if exe is None:
        return None

    def info(flag: str) -> str:
        return subprocess.run([exe, "info", flag], check=True, capture_output=True, text=True).stdout.strip()

    root = Path(info("--root"))  # <prefix>/lib/<program name>, "plumed" unless configured otherwise
    if not kernel:
        kernel = str(root.parent / f"lib{root.name}Kernel.so")
    include = Path(info("--include-dir")) / root.name
    return PlumedInstall("user", exe, kernel, str(include), {})


def detect(plumed: str | None = None) -> PlumedInstall:
    """The installation to build against: the user's (``plumed``, the path or name of its
    executable, if given) if present, else the bundled one."""
    found = _user_install(plumed) or _bundled_install()
    if found is None:
        raise PlumedNotFound(
            "no PLUMED found: put `plumed` on PATH or set PLUMED_KERNEL, "
            "or run `make install` (which installs the kernel bundled in the `hillclimber` wheel)"
        )
    return found


def installed() -> PlumedInstall:
    """The installation the compiled module was built against (recorded by `make module`)."""
    record = LIB_DIR / RECORD_NAME
    if record.exists():
        return PlumedInstall(**json.loads(record.read_text()))
    return detect()


def module_path() -> Path:
    """Absolute path of the compiled MOLENV_CLASSIFY module (for `LOAD FILE=`)."""
    path = LIB_DIR / MODULE_NAME
    if not path.exists():
        raise FileNotFoundError(f"the PLUMED module has not been built: {path} is missing (run `make module`)")
    return path


def run_plumed(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run the `plumed` command-line tool of the installation the module was built for."""
    install = installed()
    return subprocess.run([install.executable, *args], env=install.environment(), **kwargs)


# the wheel whose bundled kernel (PLUMED 2.11) the module, the regtests and the benchmarks were
# checked with; a newer one may bundle another PLUMED
HILLCLIMBER = "hillclimber==0.1.8"


_PIP = [sys.executable, "-m", "pip", "install", "--quiet"]


def _install_kernel(plumed: str | None) -> None:
    """pip-install the bundled kernel, unless the user has a PLUMED (the module needs no more)."""
    user = _user_install(plumed)
    if user is None:
        print("molenv: no PLUMED on PATH / PLUMED_KERNEL; installing the kernel bundled in `hillclimber`")
        subprocess.run([*_PIP, "--no-deps", HILLCLIMBER], check=True)
    else:
        print(f"molenv: using your PLUMED ({user.executable})")


def _install_wrapper(plumed: str | None) -> None:
    """pip-install the `plumed` Python module for the user's PLUMED (the bundled wheel has its own)."""
    user = _user_install(plumed)
    if user is not None:
        print(f"molenv: installing the `plumed` Python wrapper for your PLUMED ({user.executable})")
        subprocess.run([*_PIP, "plumed"], check=True)


def _run(args) -> None:
    if args.what == "install-kernel":
        _install_kernel(args.plumed)
    elif args.what == "install-wrapper":
        _install_wrapper(args.plumed)
    elif args.what == "kind":
        print(detect(args.plumed).kind)
    elif args.what == "plumed":
        print(detect(args.plumed).executable)
    elif args.what == "include-dir":
        print(detect(args.plumed).include_dir)
    elif args.what == "kernel":
        print(installed().kernel)
    elif args.what == "record":
        LIB_DIR.mkdir(exist_ok=True)
        (LIB_DIR / RECORD_NAME).write_text(json.dumps(asdict(detect(args.plumed)), indent=2) + "\n")
    else:
        print(json.dumps(asdict(installed()), indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m molenv.plumed.kernel", description=__doc__.split("\n")[0])
    parser.add_argument("--plumed", metavar="EXE", help="the `plumed` executable of your PLUMED (default: found through "
                        "PLUMED_KERNEL or PATH, else the kernel bundled in `hillclimber`)")
    parser.add_argument("what", choices=["install-kernel", "install-wrapper", "kind", "plumed", "include-dir", "kernel",
                                         "record", "show"],
                        help="kind/plumed/include-dir: of the installation to build against; kernel/show: of the one "
                        "the module was built against")
    args = parser.parse_args(argv)
    try:
        _run(args)
    except PlumedNotFound as err:
        parser.exit(1, f"{parser.prog}: error: {err}\n")


if __name__ == "__main__":
    main()
