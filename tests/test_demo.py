"""`molenv demo` (what `make demo` runs), on every 5th frame of the committed data."""
import json
import subprocess
import sys

import numpy as np
import pytest

from molenv.demo import DATA


@pytest.mark.slow
def test_demo_quick(tmp_path):
    if not (DATA / "manifest.json").exists():
        pytest.skip("the committed MD data (data/) is absent")
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "molenv", "demo", "--quick", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Report:" in proc.stdout
    report = (out / "report.md").read_text()
    for picture in ("evaluation/confusion_polymorph.png", "interface/colvar.png", "interface/profile.png", "interface/analysis/populations.png"):
        assert picture in report and (out / picture).stat().st_size > 1000
    # the method's temperatures only (not the extra 150 K training data of the multi-temperature protocol)
    sources = [src["name"] for src in json.loads((out / "dataset" / "manifest.json").read_text())["sources"]]
    assert "urea-I-100K" in sources and "urea-I-200K" in sources and not any("150K" in name for name in sources)
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["heads"]["polymorph"]["micro_f1"] > 0.95
    # the action saw both forms of the interface run in about the proportions they were built in
    header = (out / "interface" / "COLVAR").read_text().splitlines()[0].split()[2:]
    colvar = np.loadtxt(out / "interface" / "COLVAR")
    f_i, f_iv = colvar[:, header.index("cls.f_I")], colvar[:, header.index("cls.f_IV")]
    # (form I molecules next to the interfaces count as IV: f_I 0.37-0.43 for 160 / 340 = 0.47)
    assert np.all(np.abs(f_i - 160 / 340) < 0.12) and np.all(np.abs(f_iv - 180 / 340) < 0.12)
    assert np.all(f_i + f_iv > 0.98)
