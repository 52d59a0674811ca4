"""`molenv simulate --plumed`: a PLUMED bias (MOLENV_CLASSIFY) inside OpenMM through
`openmm.PythonForce`: energy and forces are PLUMED's, the box is PLUMED's, a biased run writes
COLVAR/HILLS and a killed run resumes with every COLVAR line and every hill exactly once."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _md_support import kill_in_production, simulate

openmm = pytest.importorskip("openmm")
if not hasattr(openmm, "PythonForce"):
    pytest.skip("this OpenMM has no PythonForce", allow_module_level=True)

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "urea_sf.molenv"
INTERFACE = REPO / "data" / "urea" / "urea-I-IV-interface-100K"
PATH = "PATH_CLASSES=I,IV PATH_START=0.9,0.1 PATH_END=0.27,0.73 PATH_NIMAGES=10 LAMBDA=200"



def colvar(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    fields = [l.split()[2:] for l in lines if l.startswith("#! FIELDS")]
    return fields[0], np.array([[float(x) for x in l.split()] for l in lines if l.strip() and not l.startswith("#")])


@pytest.fixture(scope="module")
def ff_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forcefields")


def test_bias_energy_and_forces_are_plumeds(tmp_path, plumed_module):
    """RESTRAINT on f_I of the committed model at the last frame of the I/IV interface run
    (f_I = 0.45, 340 molecules): the PythonForce's energy is 0.5 KAPPA (f_I - AT)^2 with f_I
    from COLVAR, its forces are minus the derivative of that energy (central difference along
    a random direction), and it follows the box it is given (a barostat's trial box)."""
    import MDAnalysis as mda
    from openmm import unit

    from molenv.plumed.openmm_bridge import BIAS_GROUP, PlumedBias

    if not INTERFACE.with_suffix(".xtc").is_file():
        pytest.skip("data/urea lacks the interface run")
    u = mda.Universe(str(INTERFACE.with_suffix(".pdb.gz")), str(INTERFACE.with_suffix(".xtc")))
    u.trajectory[-1]
    pos = u.atoms.positions.astype(np.float64) / 10.0  # nm
    box = np.diag(u.dimensions[:3]).astype(np.float64) / 10.0
    kappa, at = 2000.0, 0.3
    dat = tmp_path / "plumed.dat"
    dat.write_text(f"LOAD FILE={plumed_module}\ncls: MOLENV_CLASSIFY MODEL={MODEL} MOLECULES=@mdatoms {PATH}\n"
                   f"r: RESTRAINT ARG=cls.f_I AT={at} KAPPA={kappa}\nPRINT ARG=cls.f_I,cls.s,r.bias FILE=COLVAR FMT=%.15g\n")
    bias = PlumedBias(tmp_path / "run", dat, u.atoms.masses, None, 0.002, 100.0, periodic=True)
    system = openmm.System()
    for m in u.atoms.masses:
        system.addParticle(float(m))
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*v) for v in box))
    system.addForce(bias.force())
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.002), openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pos)
    bias.active = True

    def energy(x, cell=None):
        if cell is not None:
            ctx.setPeriodicBoxVectors(*cell)
        ctx.setPositions(x)
        return ctx.getState(getEnergy=True, groups={BIAS_GROUP}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    e0 = energy(pos)
    forces = ctx.getState(getForces=True, groups={BIAS_GROUP}).getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert ctx.getState(getEnergy=True, groups={0}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == 0.0
    assert bias.checkpoint(ctx) == 0  # PLUMED's update of step 0: COLVAR written and flushed
    names, rows = colvar(tmp_path / "run" / "COLVAR")
    assert names == ["time", "cls.f_I", "cls.s", "r.bias"] and rows.shape == (1, 4)
    f_i = rows[0, 1]
    assert 0.35 < f_i < 0.55  # not saturated: real forces
    assert e0 == pytest.approx(0.5 * kappa * (f_i - at) ** 2, rel=1e-10) and e0 == pytest.approx(rows[0, 3], rel=1e-10)
    # forces = -dE/dx: central difference along a random direction (only C, O, N1, N2 carry forces)
    assert np.abs(forces[1::8]).max() > 1.0 and np.abs(forces[3::8]).max() == 0.0
    d = np.random.default_rng(7).normal(size=pos.shape)
    d /= np.linalg.norm(d)
    h = 1e-4  # nm
    fd = -(energy(pos + h * d) - energy(pos - h * d)) / (2 * h)
    assert fd == pytest.approx(np.sum(forces * d), rel=1e-6)
    # the box of the State reaches PLUMED: a Monte Carlo barostat's trial (box and molecules scaled by 1 %)
    centres = pos.reshape(-1, 8, 3)[:, :1]
    scaled = (pos.reshape(-1, 8, 3) + 0.01 * centres).reshape(-1, 3)
    e1 = energy(scaled, box * 1.01)
    ctx.setStepCount(1)
    assert bias.checkpoint(ctx) == 1
    _, rows = colvar(tmp_path / "run" / "COLVAR")
    assert rows.shape == (2, 4) and rows[1, 0] == pytest.approx(0.002)
    assert e1 == pytest.approx(rows[1, 3], rel=1e-10) and e1 == pytest.approx(0.5 * kappa * (rows[1, 1] - at) ** 2, rel=1e-10)
    assert abs(rows[1, 1] - f_i) > 1e-4  # the classification (and so the bias) depends on the box
    bias.finalize()


def crystal_args(ff_cache, reference_dir, out, plumed, production=0.06, *extra):
    return ["crystal", "--molecule", "urea", "--atom-types", "gaff", "--charges", "gas", "--ff-cache", ff_cache,
            "--structure", reference_dir / "urea/formI.cif", "--equilibrate", 0, "--production", production, "--frame-interval", min(0.02, production),
            "--checkpoint-interval", 0.02, "--report-interval", 0.02, "--threads", 1, "--no-progress", "--no-minimise",
            "--plumed", plumed, "--out", out, *extra]


@pytest.mark.reference
def test_killed_biased_run_resumes_plumed_exactly(tmp_path, ff_cache, reference_dir, plumed_module, monkeypatch):
    """METAD on the path CV s of the I -> IV path, in NPT (Monte Carlo barostat): kill the run
    (SIGKILL) after a few checkpoints, run the command again: COLVAR has every step once, HILLS
    every PACE-th step once, METAD read its hills back, and the snapshot is cleaned up."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "urea.molenv").write_bytes(MODEL.read_bytes())
    dat = tmp_path / "metad.dat"
    dat.write_text(f"# relative MODEL path: made absolute in the run's copy\nLOAD FILE={plumed_module}\n"
                   f"cls: MOLENV_CLASSIFY MODEL=models/urea.molenv MOLECULES=@mdatoms {PATH}\n"
                   "METAD ARG=cls.s SIGMA=0.02 HEIGHT=1.0 PACE=5 BIASFACTOR=10 FILE=HILLS\n"
                   "PRINT ARG=cls.s,cls.z,cls.f_I,cls.f_IV FILE=COLVAR FMT=%.12g\n")
    out = tmp_path / "run"
    args = ["simulate", *map(str, crystal_args(ff_cache, reference_dir, out, dat.name, 0.4))]
    stopped = kill_in_production(args, out, step=60, settle=0.1)  # PLUMED writes past the checkpoint
    assert not stopped["done"] and stopped["plumed"]["step"] == stopped["step"]
    assert (out / stopped["plumed"]["checkpoint"]).is_dir()
    copy = (out / "plumed" / "plumed.dat").read_text()
    assert f"MODEL={tmp_path / 'models' / 'urea.molenv'}" in copy and "FILE=HILLS" in copy
    assert simulate(*args[1:]) == 0
    names, rows = colvar(out / "plumed" / "COLVAR")
    assert names == ["time", "cls.s", "cls.z", "cls.f_I", "cls.f_IV"]
    assert len(rows) == 201 and np.allclose(rows[:, 0], 0.002 * np.arange(201), atol=1e-9)  # steps 0..200, each once
    _, hills = colvar(out / "plumed" / "HILLS")
    assert np.allclose(hills[:, 0], 0.01 * np.arange(1, 41), atol=1e-9)  # every 5th step from step 5, each once
    assert hills[:, 1] == pytest.approx(rows[5::5, 1], rel=1e-8, abs=1e-12)  # each hill where COLVAR has s at its step
    # well-tempered heights (written x gamma/(gamma-1)): H exp(-V(s_k) / (k_B T (gamma-1))), V from all earlier hills,
    # those before the kill included (read back on restart), and k_B T at the run's 100 K (setKbT; no TEMP in the input);
    # PLUMED's stretched Gaussian: exp(-x^2/2) shifted and rescaled to vanish at x^2 = 2 DP2CUTOFF = 12.5
    gamma, kbt, sigma, cut = 10.0, 0.00831446261815324 * 100.0, 0.02, 12.5
    heights = hills[:, 3] * (gamma - 1) / gamma
    for k in range(len(hills)):
        x2 = ((hills[k, 1] - hills[:k, 1]) / sigma) ** 2
        kernel = np.where(x2 < cut, (np.exp(-0.5 * x2) - np.exp(-0.5 * cut)) / (1 - np.exp(-0.5 * cut)), 0.0)
        assert heights[k] == pytest.approx(np.exp(-np.sum(heights[:k] * kernel) / (kbt * (gamma - 1))), rel=1e-9), k
    log = (out / "plumed" / "plumed.log").read_text()
    assert f"Restarting from HILLS:      {stopped['step'] // 5} Gaussians read" in log
    run_log = (out / "run.log").read_text()
    assert f"restarted from its checkpoint at PLUMED step {stopped['step']}" in run_log and " bias=" in run_log
    assert not list(out.glob("plumed-checkpoint-*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == 20 and summary["plumed"]["stages"] == ["production"]
    assert {"COLVAR", "HILLS", "plumed.dat", "plumed.log"} <= set(summary["plumed"]["files"])
    # a changed input is another run
    dat.write_text(dat.read_text().replace("HEIGHT=1.0", "HEIGHT=2.0"))
    assert simulate(*args[1:]) == 2


@pytest.mark.reference
def test_bad_plumed_inputs_stop_before_md(tmp_path, ff_cache, reference_dir, plumed_module, capsys):
    out = tmp_path / "run"
    head = f"LOAD FILE={plumed_module}\ncls: MOLENV_CLASSIFY MODEL={MODEL} MOLECULES=@mdatoms"
    cases = [
        (f"{head} PROB_FILE=prob.dat\n", [], "PROB_FILE in a biased run"),
        (f"{head}\nRESTRAINT ARG=cls.f_I AT=0.5 KAPPA=100 FOO=1\n", [], "PLUMED could not start"),
        (f"{head}\nRESTRAINT ARG=cls.f_I AT=0.5 KAPPA=100\n", ["--plumed-stages", "melt"], "PLUMED stages melt: the stages of this run are equilibrate, production"),
        (f"{head}\nRESTRAINT ARG=cls.f_I AT=0.5 KAPPA=100\nene: ENERGY\nPRINT ARG=ene FILE=E\n", [], "needs the potential energy"),
    ]
    for k, (text, extra, message) in enumerate(cases):
        dat = tmp_path / f"bad{k}.dat"
        dat.write_text(text)
        code = simulate(*crystal_args(ff_cache, reference_dir, out, dat, 0.004, *extra))
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (k, err)
        if k < 3:
            assert not out.exists()  # refused before anything was built or run
