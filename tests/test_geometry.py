"""The richer point-vector geometry (issue 16): a centroid centre, plane-normal vectors and
sign-invariant vectors, end to end: spec, Python descriptors, model file (version 3),
MOLENV_CLASSIFY with analytic forces and virial.

Two test specs (tests/data/specs): nicotinamide with the ring centroid as the centre, a ring
bond, the ring normal and a sign-invariant ring normal; urea with the N1 -> N2 vector
sign-invariant. Each gets a tiny random network written to a model file (no training), and
toy frames of rigid molecules (randomly oriented, slightly deformed) on a jittered grid:
orthorhombic with whole molecules, the same wrapped into the cell (molecules split across
the boundary), a triclinic cell with split molecules, and a cluster without box.

* Python (`compute_descriptors`, `Network.forward`) and PLUMED (SF_FILE, PROB_FILE) agree
  number by number (1e-9);
* the derivative arrays of the components (DUMPDERIVATIVES: atoms and cell) against central
  differences, a slab region on the centroid included; the bias forces and virial of the
  default mode (one contracted channel) against FULL_DERIVATIVES, two threads and central
  differences of the bias energy;
* swapping the labels of urea's N1 and N2 (with their H) in random molecules changes
  neither the descriptors nor PLUMED's probabilities, bit for bit, where N1 -> N2 is
  sign-invariant (and does change them where it is not).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from _fd_support import assert_derivatives_match, assert_forces_match, assert_virial_matches, directional_frames, forces_in_every_mode, perturbed_frames
from _frames_support import sheared, wrapped
from molenv.descriptors import compute_descriptors
from molenv.frames import MolecularFrame
from molenv.gnn.synthetic import UREA_XYZ
from molenv.modelfile import GEOMETRY_FORMAT_VERSION, Model, Network, read_model, write_model
from molenv.spec import SpecError, load_spec

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import run_driver, xyz_text  # noqa: E402

SPECS = Path(__file__).resolve().parent / "data" / "specs"
CLASSES = ["A", "B", "Melt"]
ARGS = ["--ixyz", "traj.xyz", "--length-units", "A"]
EPS = 1e-6  # A, for the central differences

# Planar nicotinamide in spec order (C3 C2 N1 C6 C5 C4 C7 O7 N7 H71 H72 H2 H6 H5 H4): the ring
# (radius 1.39 A) in the xy plane, C3 on +x, the carboxamide beyond it
_RING = 1.39 * np.array([[np.cos(a), np.sin(a), 0.0] for a in np.radians([0, 60, 120, 180, 240, 300])])
_RING_H = 2.47 * np.array([[np.cos(a), np.sin(a), 0.0] for a in np.radians([60, 180, 240, 300])])
NICOTINAMIDE_XYZ = np.vstack([_RING, [[2.89, 0.0, 0.0], [3.51, 1.065, 0.0], [3.56, -1.16, 0.0], [4.56, -1.16, 0.0], [3.06, -2.03, 0.0]], _RING_H])
TEMPLATES = {"nicotinamide-ring": NICOTINAMIDE_XYZ, "urea-sign-invariant": UREA_XYZ}
UREA_N1_BLOCK, UREA_N2_BLOCK = [2, 3, 4], [5, 6, 7]  # N1 H11 H12, N2 H21 H22 (0-based)
SHEAR = np.array([[1.0, 0.0, 0.0], [0.25, 1.0, 0.0], [0.15, -0.2, 1.0]])  # of the triclinic frames


def toy_frame(template: np.ndarray, rng: np.random.Generator, per_side=(3, 3, 3), spacing=4.8) -> MolecularFrame:
    """Molecules of `template` on a jittered grid, randomly oriented, each atom displaced by
    ~0.05 A (rings not quite planar); an orthorhombic box, whole molecules."""
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in per_side), indexing="ij"), -1).reshape(-1, 3) * spacing
    centres = grid + rng.uniform(-0.6, 0.6, size=grid.shape)
    rotations = Rotation.random(len(grid), random_state=rng).as_matrix()
    positions = centres[:, None, :] + np.einsum("nij,aj->nai", rotations, template) + rng.normal(scale=0.05, size=(len(grid), len(template), 3))
    n, a = len(grid), len(template)
    return MolecularFrame(positions.reshape(-1, 3), np.r_[np.array(per_side) * spacing, 90.0, 90.0, 90.0],
                          np.arange(n * a).reshape(n, a), np.full(n * a, 6))


def frames_of(name: str) -> dict[str, MolecularFrame]:
    rng = np.random.default_rng(len(name))
    base = toy_frame(TEMPLATES[name], rng)
    return {
        "orthorhombic": base,
        "split": wrapped(base),
        "triclinic-split": wrapped(sheared(toy_frame(TEMPLATES[name], rng), SHEAR)),
        "cluster": toy_frame(TEMPLATES[name], rng).replace(box=None),
    }


FRAMES = {name: frames_of(name) for name in TEMPLATES}


def random_model(spec, frames, seed: int) -> Model:
    """A tiny random network (tanh hidden 6, softmax over 3 classes) on the spec's
    descriptors, inputs standardised on `frames`, steep enough that every input matters."""
    rng = np.random.default_rng(seed)
    d = spec.descriptor_set()
    x = np.vstack([compute_descriptors(f, d) for f in frames])
    sizes = [d.n_features, 6, len(CLASSES)]
    net = Network(x.mean(axis=0), 1.0 / (x.std(axis=0) + 0.1), [rng.normal(size=(o, i)) for i, o in zip(sizes, sizes[1:])],
                  [rng.normal(scale=0.3, size=o) for o in sizes[1:]], "tanh", "softmax")
    return Model(f"random {spec.name}", CLASSES, d, net, {"purpose": "tests/test_geometry.py"})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{spec name: (path, Model read back)} of the random model files."""
    folder = tmp_path_factory.mktemp("geometry-models")
    out = {}
    for k, name in enumerate(TEMPLATES):
        spec = load_spec(SPECS / f"{name}.toml")
        path = write_model(random_model(spec, FRAMES[name].values(), seed=k + 1), folder / f"{name}.molenv")
        out[name] = (path, read_model(path))
    return out


def head(extra: str) -> str:
    return f"UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n{extra}"


# ----------------------------------------------------------------------------- spec and file


def test_specs_and_model_files(models):
    nic = load_spec(SPECS / "nicotinamide-ring.toml")
    assert nic.centre == (1, 2, 3, 4, 5, 6) and nic.vectors == [(4, 1), (1, 3, 1, 5), (2, 4, 2, 6)] and nic.sign_invariant == (3,)
    urea = load_spec(SPECS / "urea-sign-invariant.toml")
    assert urea.centre == 1 and urea.vectors == [(1, 2), (3, 6)] and urea.sign_invariant == (2,)
    # the labelling check (molenv.labelling) finds urea's N1 -> N2 and passes over plane normals
    from molenv.labelling import equivalent_vectors

    assert [v.index for v in equivalent_vectors(urea)] == [1] and equivalent_vectors(nic) == []
    for name, (path, model) in models.items():
        text = path.read_text()
        assert f"molenv_model {GEOMETRY_FORMAT_VERSION}\n" in text  # richer geometry: version 3
        assert model.descriptors == load_spec(SPECS / f"{name}.toml").descriptor_set()
    assert "centre_atoms 6 1 2 3 4 5 6\n" in models["nicotinamide-ring"][0].read_text()
    assert "vector 3 normal 2 4 2 6 sign_invariant\n" in models["nicotinamide-ring"][0].read_text()
    # the JSON form of datasets' manifests and SF checkpoints keeps the geometry
    import json

    from molenv.descriptors import descriptor_set_from_dict, descriptor_set_to_dict

    for _, model in models.values():
        d = model.descriptors
        assert descriptor_set_from_dict(json.loads(json.dumps(descriptor_set_to_dict(d)))) == d
    # a model of the shipped geometry is still written as version 1, byte for byte
    original = REGTEST / "rt-forces" / "softmax.molenv"
    assert write_model(read_model(original), models["urea-sign-invariant"][0].parent / "v1.molenv").read_bytes() == original.read_bytes()


@pytest.mark.parametrize("old, new, message", [
    ('centre = "C"', 'centre = ["C"]', "a centroid centre needs a list of two or more distinct atoms"),
    ('centre = "C"', 'centre = ["C", "O", "C"]', "a centroid centre needs a list of two or more distinct atoms"),
    ('centre = "C"', 'centre = ["C", "X"]', "no atom named 'X'"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ atoms = ["N1", "N2"], sign_invariant = 1 }', "'sign_invariant' must be true or false"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ atoms = ["N1", "N2"], sign = true }', "vector 2 must be [a, b] or a table"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ atoms = ["N1", "N2"], normal = [["C", "O"], ["C", "N1"]] }', "vector 2 must be"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ normal = [["C", "O"], ["C"]] }', "vector 2 normal needs two atoms [a, b]"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ normal = [["C", "O"]] }', "'normal' needs two vectors [[a, b], [c, d]]"),
    ('{ atoms = ["N1", "N2"], sign_invariant = true }', '{ normal = [["C", "O"], ["N1", "N1"]] }', "vector 2 starts and ends on atom 3"),
    ('vectors = [\n  ["C", "O"],', 'vectors = [\n  ["C", "O", "N1"],', "vector 1 needs two atoms [a, b]"),
])
def test_bad_specs(tmp_path, old, new, message):
    text = (SPECS / "urea-sign-invariant.toml").read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert message in str(err.value) and str(path) in str(err.value), err.value


# ----------------------------------------------------------------------------- Python = PLUMED


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_python_and_plumed_agree(tmp_path, models, name):
    path, model = models[name]
    frames = FRAMES[name]
    files = {"traj.xyz": xyz_text([f.positions for f in frames.values()], [f.box_matrix() for f in frames.values()]), "model.molenv": path}
    n = next(iter(frames.values())).n_atoms  # every frame kind in one run (a frame without box: a cluster)
    run = run_driver(tmp_path, head(f"c: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{n} PROB_FILE=prob.dat SF_FILE=sf.dat\n"
                                    "PRINT ARG=c.nmol FILE=colvar\n"), ARGS, files)
    assert run.returncode == 0, run.output[-3000:]
    _, prob = run.read_table("prob.dat")
    _, sf = run.read_table("sf.dat")
    n_mol = len(prob) // len(frames)
    for k, (kind, frame) in enumerate(frames.items()):
        g = compute_descriptors(frame, model.descriptors)
        rows = slice(k * frame.n_molecules, (k + 1) * frame.n_molecules)
        assert frame.n_molecules == n_mol
        np.testing.assert_allclose(sf[rows, 2:], g, rtol=1e-9, atol=1e-12, err_msg=kind)
        np.testing.assert_allclose(prob[rows, 2:], model.predict_proba(g), rtol=0, atol=1e-9, err_msg=kind)
        assert np.ptp(prob[rows, 2:], axis=0).max() > 0.1  # the molecules differ: something was compared


# ----------------------------------------------------------------------------- derivatives


def requested_atoms(model: Model, frame: MolecularFrame) -> np.ndarray:
    """The atoms MOLENV_CLASSIFY requests, in its order (molecule by molecule, the positions
    some descriptor uses, sorted): the rows of its derivative arrays."""
    d = model.descriptors
    positions = sorted(set(d.centre_atoms) | {a for v in d.vectors for a in v})
    return frame.molecules[:, [p - 1 for p in positions]].ravel()


COMPONENTS = ["c.n_A", "c.f_B", "c.s", "c.z"]
REGION_COMPONENTS = ["r.n_Melt", "r.f_A", "r.nmol"]
PATH = "PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20"


@pytest.mark.parametrize("kind", ["orthorhombic", "split", "triclinic-split", "cluster"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_derivatives_against_finite_differences(tmp_path, models, name, kind):
    path, model = models[name]
    frame = FRAMES[name][kind]
    n = frame.n_atoms
    positions, boxes, checks, h = perturbed_frames(frame.positions, frame.box_matrix(), np.random.default_rng(len(kind)), EPS)
    components = COMPONENTS + (REGION_COMPONENTS if frame.box is not None else [])
    text = f"c: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{n} {PATH}\n"
    if frame.box is not None:  # a slab on the molecule centres (the centroids for nicotinamide)
        text += f"r: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{n} REGION_AXIS=z REGION_CENTER=6.0 REGION_HALFWIDTH=2.0 REGION_SMOOTHING=3.0\n"
    text += (f"PRINT ARG={','.join(components)} FILE=colvar FMT=%.17g\n"
             f"DUMPDERIVATIVES ARG={','.join(components)} FILE=deriv FMT=%.17g STRIDE=1000000\n")  # frame 0 only
    files = {"traj.xyz": xyz_text(positions, boxes), "model.molenv": path}
    run = run_driver(tmp_path, head(text), ARGS, files)
    assert run.returncode == 0, run.output[-3000:]
    values = run.read_table("colvar")[1][:, 1:]
    fields, deriv = run.read_table("deriv")
    requested = requested_atoms(model, frame)
    assert fields == ["time", "parameter", *components] and len(deriv) == 3 * len(requested) + 9
    for c, comp in enumerate(components):
        d = deriv[:, 2 + c]
        atoms = np.zeros((n, 3))  # atoms that no descriptor uses have no derivatives
        atoms[requested] = d[: 3 * len(requested)].reshape(-1, 3)
        assert_derivatives_match(values[:, c], atoms, d[3 * len(requested) :], h, checks, EPS, comp, atol=1e-9)


RESTRAINTS = """b0: RESTRAINT ARG=c.n_A AT=4.0 KAPPA=0.7 SLOPE=0.3
b1: RESTRAINT ARG=c.f_B,c.s,c.z AT=0.2,0.5,0.1 KAPPA=30,8,20
PRINT ARG=b0.bias,b1.bias FILE=energy FMT=%.17g
"""


@pytest.mark.parametrize("kind", ["triclinic-split", "cluster"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_bias_forces_in_both_modes_and_threads(tmp_path, models, name, kind):
    """Forces and virial of restraints: the default mode (one contracted channel) =
    FULL_DERIVATIVES = two threads, and = central differences of the bias energy along a
    random direction of the atoms and of the cell."""
    path, _ = models[name]
    frame = FRAMES[name][kind]
    rng = np.random.default_rng(5)
    x0, h0 = frame.positions, frame.box_matrix()
    u, dh = rng.normal(size=x0.shape), rng.normal(size=(3, 3))
    positions, boxes, h = directional_frames(x0, h0, u, dh, EPS)
    files = {"traj.xyz": xyz_text(positions, boxes), "model.molenv": path}
    runs = forces_in_every_mode(tmp_path, lambda extra: head(f"c: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{frame.n_atoms} {PATH} {extra}\n") + RESTRAINTS,
                                ARGS, files)
    energy = runs["default"].read_table("energy")[1][:, 1:].sum(axis=1)
    virial, forces = runs["default"].read_dump_forces()[0]
    assert_forces_match(energy[1], energy[2], forces, u, EPS)
    assert_virial_matches(energy[3], energy[4], virial, h, dh, EPS)


# ----------------------------------------------------------------------------- label swap


def swap_labels(frame: MolecularFrame, molecules: np.ndarray) -> MolecularFrame:
    """Urea's N1 (with H11, H12) and N2 (with H21, H22) exchanged in `molecules`: the same
    atoms, labelled the other way round."""
    positions = frame.positions.copy()
    for m in molecules:
        a, b = frame.molecules[m, UREA_N1_BLOCK], frame.molecules[m, UREA_N2_BLOCK]
        positions[a], positions[b] = frame.positions[b], frame.positions[a]
    return frame.replace(positions=positions)


@pytest.mark.parametrize("kind", ["split", "triclinic-split", "cluster"])
def test_swapping_equivalent_atoms_changes_nothing(tmp_path, models, kind):
    path, model = models["urea-sign-invariant"]
    frame = FRAMES["urea-sign-invariant"][kind]
    rng = np.random.default_rng(11)
    swapped = swap_labels(frame, rng.choice(frame.n_molecules, size=frame.n_molecules // 2, replace=False))
    d = model.descriptors
    g, g_swapped = compute_descriptors(frame, d), compute_descriptors(swapped, d)
    assert np.array_equal(g, g_swapped)
    # the test has teeth: with N1 -> N2 an ordinary vector the descriptors change
    plain = type(d)(d.atoms_per_molecule, d.centre_atom, d.vectors, d.rmin, d.rmax, d.functions)
    assert np.abs(compute_descriptors(frame, plain) - compute_descriptors(swapped, plain)).max() > 1e-3
    files = {"traj.xyz": xyz_text([frame.positions, swapped.positions], [frame.box_matrix()] * 2), "model.molenv": path}
    run = run_driver(tmp_path, head(f"c: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{frame.n_atoms} PROB_FILE=prob.dat SF_FILE=sf.dat\n"
                                    "PRINT ARG=c.n_A,c.n_B,c.n_Melt FILE=colvar FMT=%.17g\n"), ARGS, files)
    assert run.returncode == 0, run.output[-3000:]
    n = frame.n_molecules
    for table in ("prob.dat", "sf.dat"):
        rows = run.read_table(table)[1][:, 2:]
        assert np.array_equal(rows[:n], rows[n:]), table
    colvar = run.read_table("colvar")[1][:, 1:]
    assert np.array_equal(colvar[0], colvar[1])


def test_plane_normal_of_parallel_vectors_is_refused(tmp_path, models):
    """A normal of two parallel vectors has no direction: both sides stop with a message."""
    from molenv.descriptors import DescriptorError

    path, model = models["nicotinamide-ring"]
    frame = FRAMES["nicotinamide-ring"]["orthorhombic"]
    positions = frame.positions.copy()
    c3, n1, c5 = frame.molecules[4, [0, 2, 4]]  # vector 2 is (N1 - C3) x (C5 - C3)
    positions[n1] = positions[c5]  # the same two arms, exactly parallel
    bad = frame.replace(positions=positions)
    with pytest.raises(DescriptorError, match=r"vector 2 \(1, 3, 1, 5\) of molecule 4 has zero length \(a plane normal of parallel vectors\)"):
        compute_descriptors(bad, model.descriptors)
    run = run_driver(tmp_path, head(f"c: MOLENV_CLASSIFY MODEL=model.molenv MOLECULES=1-{frame.n_atoms}\nPRINT ARG=c.nmol FILE=colvar\n"), ARGS,
                     {"traj.xyz": xyz_text([positions], [frame.box_matrix()]), "model.molenv": path})
    assert run.returncode != 0
    assert "molecule 5 has an intramolecular vector of zero length (two atoms coincide, or a plane normal's two vectors are parallel)" in run.output
