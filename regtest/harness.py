"""Helpers for the pytest side of the MOLENV_CLASSIFY tests (tests/test_plumed_*.py):
run `plumed driver` on an input written in a temporary directory and read its outputs."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.plumed.kernel import installed, module_path, run_plumed

HERE = Path(__file__).resolve().parent


@dataclass
class DriverRun:
    returncode: int
    output: str  # stdout + stderr
    workdir: Path

    def read_table(self, name: str) -> tuple[list[str], np.ndarray]:
        """A PLUMED-style table (#! FIELDS ...): field names and the numbers."""
        fields, rows = [], []
        for line in (self.workdir / name).read_text().splitlines():
            if line.startswith("#! FIELDS"):
                fields = line.split()[2:]
            elif line.strip() and not line.startswith("#"):
                rows.append([float(x) for x in line.split()])
        return fields, np.array(rows)

    def read_dump_forces(self, name: str = "forces") -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of `--dump-forces --dump-full-virial`: (virial 3x3, forces natoms x 3)."""
        lines = (self.workdir / name).read_text().split("\n")
        frames, i = [], 0
        while i < len(lines) and lines[i].strip():
            n = int(lines[i])
            virial = np.array([float(x) for x in lines[i + 1].split()]).reshape(3, 3)
            forces = np.array([[float(x) for x in lines[i + 2 + k].split()[1:4]] for k in range(n)])
            frames.append((virial, forces))
            i += n + 2
        return frames

    def read_debug_forces(self, name: str = "debug") -> np.ndarray:
        """`--debug-forces` output: rows (parameter, analytical, numerical) of all frames."""
        rows = [l.split() for l in (self.workdir / name).read_text().splitlines() if l.strip() and not l.startswith("#")]
        return np.array([[float(x) for x in r] for r in rows])

    def check_debug_forces(self, natoms: int, nframes: int, what: str = "", name: str = "debug") -> list[np.ndarray]:
        """Assert that the analytical derivatives of `--debug-forces` (3 natoms positions,
        then 9 box entries per frame) match PLUMED's finite differences to 1e-5 of the
        largest (PLUMED's differences are accurate to ~1e-6 relative), positions and box
        separately; return the analytical derivatives of each frame."""
        rows = self.read_debug_forces(name)
        per_frame = 3 * natoms + 9
        assert len(rows) == nframes * per_frame, f"{what}: {len(rows)} rows for {nframes} frames of {natoms} atoms"
        analytical = []
        for frame in range(nframes):
            block = rows[frame * per_frame : (frame + 1) * per_frame]
            ana, num = block[:, 1], block[:, 2]
            scale = np.abs(ana).max()
            assert scale > 1e-3, f"{what}: no forces to check in frame {frame}"
            err = np.abs(ana - num)
            worst = int(err.argmax())
            where = f"atom {worst // 3 + 1} {'xyz'[worst % 3]}" if worst < 3 * natoms else f"box {worst - 3 * natoms}"
            assert err.max() <= 1e-5 * scale, f"{what} frame {frame}: {where} analytical {ana[worst]} numerical {num[worst]}"
            box = slice(3 * natoms, per_frame)
            assert np.abs(ana[box] - num[box]).max() <= 1e-5 * max(scale, np.abs(ana[box]).max()), f"{what} frame {frame}: box"
            analytical.append(ana)
        return analytical


def run_driver(workdir: Path, plumed_dat: str, args: list[str], files: dict[str, str | Path] | None = None, env: dict | None = None) -> DriverRun:
    """Write plumed.dat (with @MOLENV_LIB@ replaced) and `files` (name -> text or path to
    copy) into workdir and run `plumed driver --plumed plumed.dat ARGS` there."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plumed.dat").write_text(plumed_dat.replace("@MOLENV_LIB@", str(module_path())))
    for name, content in (files or {}).items():
        if isinstance(content, Path):
            shutil.copy(content, workdir / name)
        else:
            (workdir / name).write_text(content)
    cmd = ["driver", "--plumed", "plumed.dat", *args]
    if env is None:
        proc = run_plumed(cmd, cwd=workdir, capture_output=True, text=True)
    else:  # extra environment variables on top of what the kernel needs
        install = installed()
        full = install.environment()
        full.update(env)
        proc = subprocess.run([install.executable, *cmd], cwd=workdir, env=full, capture_output=True, text=True)
    return DriverRun(proc.returncode, proc.stdout + proc.stderr, workdir)


def xyz_text(frames: list[np.ndarray], boxes: list[np.ndarray | None], names: list[str] | None = None) -> str:
    """xyz trajectory text for --ixyz (box line: 3 lengths, 9 numbers, or 0 0 0)."""
    out = []
    for pos, box in zip(frames, boxes):
        out.append(str(len(pos)))
        if box is None:
            out.append("0 0 0")
        else:
            out.append(" ".join(repr(float(x)) for x in np.asarray(box).ravel()))
        for k, x in enumerate(pos):
            out.append(f"{names[k] if names else 'X'} {float(x[0])!r} {float(x[1])!r} {float(x[2])!r}")
    return "\n".join(out) + "\n"


def read_xyz(path: Path) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Frames and boxes (3x3 or None) of an xyz trajectory written for --ixyz."""
    lines = Path(path).read_text().splitlines()
    frames, boxes, i = [], [], 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        b = [float(x) for x in lines[i + 1].split()]
        boxes.append(None if not any(b) else (np.diag(b) if len(b) == 3 else np.array(b).reshape(3, 3)))
        frames.append(np.array([[float(x) for x in lines[i + 2 + k].split()[1:4]] for k in range(n)]))
        i += n + 2
    return frames, boxes
