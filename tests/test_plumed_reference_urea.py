"""The imported reference urea SF-MLP (Kuroshima et al. 2024) through MOLENV_CLASSIFY on
the reference urea form I 6x6x6 dump (432 molecules, wrapped coordinates, split
molecules): every molecule is form I, and the per-molecule descriptors and
probabilities written by the action agree with the Python implementation
(molenv.descriptors + molenv.modelfile) to 1e-9."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import run_driver, xyz_text  # noqa: E402
from molenv.modelfile import write_model  # noqa: E402

pytestmark = pytest.mark.reference


def read_lammps_dump(path: Path):
    """Frames of a LAMMPS dump (orthorhombic, columns id mol element sym_type x y z),
    atoms sorted by id: (positions, box lengths, elements)."""
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if lines[i].startswith("ITEM: NUMBER OF ATOMS"):
            n = int(lines[i + 1])
            bounds = np.array([[float(x) for x in lines[i + 3 + k].split()[:2]] for k in range(3)])
            cols = lines[i + 6].split()[2:]
            data = np.array([[float(x) for x in l.split()] for l in lines[i + 7 : i + 7 + n]])
            data = data[np.argsort(data[:, cols.index("id")])]
            xyz = data[:, [cols.index("x"), cols.index("y"), cols.index("z")]]
            frames.append((xyz, bounds[:, 1] - bounds[:, 0], data[:, cols.index("element")].astype(int)))
            i += 7 + n
        else:
            i += 1
    return frames


def test_reference_urea_model_classifies_form_I(tmp_path, reference_dir):
    from molenv.descriptors import compute_descriptors
    from molenv.frames import MolecularFrame
    from molenv.reference import shipped_reference_model

    model = shipped_reference_model("urea", reference_dir)
    write_model(model, tmp_path / "urea.molenv")
    frames = read_lammps_dump(reference_dir / "urea" / "formI_6x6x6_molstruc.dump")
    assert len(frames) == 2 and all(len(f[0]) == 3456 for f in frames)
    symbols = {1: "H", 2: "O", 3: "C", 4: "N"}  # dump element codes
    names = [symbols[e] for e in frames[0][2]]
    assert names[:8] == ["C", "O", "N", "H", "H", "N", "H", "H"]  # per-molecule order C, O, N1, H, H, N2, H, H
    traj = xyz_text([f[0] for f in frames], [np.diag(f[1]) for f in frames], names)
    run = run_driver(
        tmp_path,
        "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
        "c: MOLENV_CLASSIFY MODEL=urea.molenv MOLECULES=1-3456 PROB_FILE=prob SF_FILE=sf NUM_THREADS=2\n"
        "PRINT ARG=c.* FILE=colvar FMT=%.17g\n",
        ["--ixyz", "traj.xyz", "--length-units", "A"],
        {"traj.xyz": traj},
    )
    assert run.returncode == 0, run.output[-3000:]
    fields, colvar = run.read_table("colvar")
    _, prob = run.read_table("prob")
    _, sf = run.read_table("sf")
    nmol = 432
    assert prob.shape == (2 * nmol, 2 + 7) and sf.shape == (2 * nmol, 2 + 24)
    # every molecule of both frames is classified as form I
    p = prob[:, 2:]
    assert np.all(np.argmax(p, axis=1) == model.classes.index("I"))
    f_I = colvar[:, fields.index("c.f_I")]
    assert np.all(f_I > 0.9), f_I
    assert np.allclose(colvar[:, fields.index("c.nmol")], nmol)
    # descriptors and probabilities agree with the Python implementation
    molecules = np.arange(3456).reshape(nmol, 8)
    for t, (xyz, lengths, elements) in enumerate(frames):
        frame = MolecularFrame(xyz, np.array([*lengths, 90.0, 90.0, 90.0]), molecules, np.array([{1: 1, 2: 8, 3: 6, 4: 7}[e] for e in elements]))
        G = compute_descriptors(frame, model.descriptors)
        Gc = sf[t * nmol : (t + 1) * nmol, 2:]
        scale = np.abs(G).max(axis=0)
        assert np.all(np.abs(Gc - G) <= 1e-9 * scale), np.abs(Gc - G).max()
        pc = p[t * nmol : (t + 1) * nmol]
        assert np.abs(pc - model.network.forward(G)).max() <= 1e-9
        assert np.allclose(colvar[t, fields.index("c.n_I")], model.network.forward(G)[:, 0].sum(), rtol=1e-10)
