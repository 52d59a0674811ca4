"""Shared by the resume tests: start `molenv simulate` in a subprocess and kill it in the
middle of its production stage, as a crashed or cancelled job would end."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from molenv.cli import main

REPO = Path(__file__).resolve().parent.parent


def simulate(*args) -> int:
    """``molenv simulate ARGS`` in this process; its exit status."""
    try:
        main(["simulate", *map(str, args)])
    except SystemExit as exc:
        return exc.code
    return 0


def kill_in_production(args: list[str], out: Path, step: int, settle: float = 0.0, timeout: float = 120.0) -> dict:
    """Run ``molenv *args`` (writing to ``out``), SIGKILL it once its progress file reports
    production step >= ``step`` (plus ``settle`` seconds), and return that progress record."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "py"))
    proc = subprocess.Popen([sys.executable, "-m", "molenv", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = out / "progress.json"
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if progress.is_file():
                p = json.loads(progress.read_text())
                if p["stage"] == 1 and p["step"] >= step:
                    break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail(f"no checkpoint in production within {timeout:g} s")
        time.sleep(settle)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    return json.loads(progress.read_text())
