"""molenv.analysis: labels and uncertain molecules, populations, core/surface by coordination
number, the slab region (against MOLENV_CLASSIFY's REGION_* and an independent fractional-
coordinate formula), tables, plots, the extended XYZ and the result file."""
from __future__ import annotations

import numpy as np
import pytest

from _analysis_support import md_files, urea_model  # noqa: F401
from molenv.analysis import (
    UNCERTAIN,
    AnalysisError,
    ClassificationResult,
    Region,
    Table,
    plot_populations,
    population_table,
    populations,
    read_table,
    region_weights,
    soft_populations,
    write_extxyz,
    write_per_molecule,
    write_table,
)


def small_result(**extra) -> ClassificationResult:
    """2 frames, 3 molecules, classes A/B/C; molecule 2 of frame 1 is uncertain below 0.5."""
    p = np.array([
        [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
        [[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]],
    ])
    return ClassificationResult(["A", "B", "C"], [0.0, 5.0], p, **extra)


def test_labels_uncertain_and_populations():
    r = small_result()
    assert r.labels().tolist() == [[0, 1, 2], [0, 2, 2]]
    assert r.labels(0.5).tolist() == [[0, 1, 2], [0, -1, 2]]
    assert r.label_names == ["A", "B", "C", UNCERTAIN]
    assert populations(r, 0.5).tolist() == [[1, 1, 1, 0], [1, 0, 1, 1]]
    assert populations(r, 0.5, weights=np.array([[1, 0, 1], [0, 1, 1]])).tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]]
    assert np.allclose(soft_populations(r), [[1.2, 1.05, 0.75], [1.05, 0.55, 1.4]])
    table = population_table(r, 0.5)
    assert table.names[:8] == ["time", "frame", "nmol", "n_A", "n_B", "n_C", "n_uncertain", "soft_A"]
    assert table.column("n_uncertain").tolist() == [0, 1] and table.column("nmol").tolist() == [3, 3]
    assert "core_nmol" not in table.names  # no coordination numbers
    with pytest.raises(AnalysisError, match=r"probabilities must have shape \(frames=2, molecules, classes=2\)"):
        ClassificationResult(["A", "B"], [0.0, 5.0], r.probabilities)
    with pytest.raises(AnalysisError, match="may not be called 'uncertain'"):
        ClassificationResult(["A", "B", UNCERTAIN], [0.0, 5.0], r.probabilities)


def test_core_surface_split_of_a_cluster():
    """A urea form I cluster (no box): molecules with fewer than 20 neighbour centres within
    the molecule radius + 6 A are at the surface, and they lie farther out than the core."""
    from molenv.analysis import frame_record
    from molenv.trajectory import Trajectory

    xtc, pdb = md_files("urea-I-cluster-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, stop=2)
    records = []
    for k, frame in enumerate(traj):
        assert frame.box is None
        records.append(frame_record(frame, k, np.tile([1.0, 0.0], (frame.n_molecules, 1)), 1))
    r = ClassificationResult.stack(records, ["I", "Melt"])
    assert r.boxes is None and r.coordination.shape == (2, 188)
    table = population_table(r, 0.5)
    core, surface = table.column("core_nmol"), table.column("surface_nmol")
    assert np.all(core > 10) and np.all(surface > 50) and np.all(core + surface == 188)
    assert np.all(table.column("surface_n_I") == surface)
    centre = r.centres.mean(axis=1, keepdims=True)
    distance = np.linalg.norm(r.centres - centre, axis=2)
    outside = r.coordination < 20
    assert distance[outside].mean() > distance[~outside].mean() + 3.0


def test_region_weights_equal_molenv_classify(tmp_path, urea_model, reference_dir, monkeypatch):
    """Soft populations with `region_weights` equal the action's n_<class> and nmol with the
    same REGION_* (a slab across the periodic boundary, with smoothing), to 1e-9."""
    from molenv.classification import classify_trajectory
    from molenv.models import SFFrameClassifier
    from molenv.plumed.kernel import module_path
    from molenv.plumed.reanalysis import reanalyse
    from molenv.trajectory import Trajectory

    dump = reference_dir / "urea" / "formI_6x6x6_molstruc.dump"
    region = Region("z", 1.5, 5.0, 2.0)  # box height 27.9 A: the slab wraps around z = 0
    (tmp_path / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={module_path()}\n"
        f"c: MOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-3456 REGION_AXIS=z REGION_CENTER=1.5 REGION_HALFWIDTH=5 REGION_SMOOTHING=2\n"
        "PRINT ARG=c.* FILE=colvar FMT=%.17g\n"
    )
    monkeypatch.chdir(tmp_path)
    reanalyse("plumed.dat", dump, progress=False)
    colvar = read_table("colvar")
    r = classify_trajectory(Trajectory(dump, "urea", type_elements="1:H,2:O,3:C,4:N"), SFFrameClassifier(urea_model), progress=False, with_coordination=False)
    w = region_weights(r.centres, r.boxes, region)
    assert np.any((w > 0) & (w < 1)) and np.any(w == 1) and np.any(w == 0)
    assert np.allclose(w.sum(axis=1), colvar.column("c.nmol"), rtol=1e-10)
    soft = soft_populations(r, w)
    for k, name in enumerate(r.classes):
        assert np.allclose(soft[:, k], colvar.column(f"c.n_{name}"), rtol=1e-9, atol=1e-12)
    table = population_table(r, 0.5, region=Region("z", 1.5, 5.0))  # hard cut: whole molecules
    inside = (region_weights(r.centres, r.boxes, Region("z", 1.5, 5.0)) == 1).sum(axis=1)
    assert np.all(table.column("nmol") == inside) and np.all(table.column("n_I") == inside)


def test_region_in_a_triclinic_cell():
    """The slab is normal to the face spanned by the other two cell vectors: its coordinate
    is the fractional coordinate times the cell height (independent formula)."""
    from molenv.frames import box_matrix

    rng = np.random.default_rng(3)
    box = np.array([20.0, 22.0, 25.0, 70.0, 80.0, 105.0])
    h = box_matrix(box)
    centres = rng.uniform(-1.0, 2.0, size=(1, 500, 3)) @ h
    for a, axis in enumerate("xyz"):
        region = Region(axis, 4.0, 3.0, 1.5)
        height = abs(np.linalg.det(h)) / np.linalg.norm(np.cross(h[(a + 1) % 3], h[(a + 2) % 3]))
        s = (centres[0] @ np.linalg.inv(h))[:, a]
        delta = (s * height - 4.0) - height * np.round((s * height - 4.0) / height)
        u = np.abs(delta) - 3.0
        t = np.clip(u / 1.5, 0, 1)
        expected = np.where(u <= 0, 1.0, 1.0 - t**3 * (10 - 15 * t + 6 * t**2))
        assert np.allclose(region_weights(centres, box[None], region)[0], expected, atol=1e-12)
    with pytest.raises(AnalysisError, match="exceeds half the cell height along z"):
        region_weights(centres, box[None], Region("z", 0.0, 10.0, 3.0))
    with pytest.raises(AnalysisError, match="expected axis:center:halfwidth"):
        Region.parse("z:1")
    assert Region.parse("Y:1:2:0.5") == Region("y", 1.0, 2.0, 0.5)


def test_tables_plot_and_result_files(tmp_path):
    r = small_result(coordination=[[25, 10, 30], [25, 12, 8]], centres=np.zeros((2, 3, 3)))
    table = population_table(r, 0.5)
    assert table.column("surface_nmol").tolist() == [1, 2] and table.column("surface_n_uncertain").tolist() == [0, 1]
    for suffix in ("dat", "csv"):
        back = read_table(write_table(tmp_path / f"pop.{suffix}", table))
        assert back.names == table.names and np.allclose(back.data, table.data, rtol=1e-9)
    png = plot_populations(tmp_path / "pop.png", table, r.classes, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    back = ClassificationResult.load(r.save(tmp_path / "r.npz"))
    assert back.classes == r.classes and np.array_equal(back.probabilities, r.probabilities) and np.array_equal(back.coordination, r.coordination)
    rows = read_table(write_per_molecule(tmp_path / "mol.dat", r, 0.5))
    assert rows.names == ["time", "frame", "mol", "A", "B", "C", "label", "cn"]
    assert rows.column("label").tolist() == [0, 1, 2, 0, -1, 2] and np.array_equal(rows.data[:, 3:6].reshape(2, 3, 3), r.probabilities)
    with pytest.raises(AnalysisError, match="no column 'n_D'"):
        Table(["n_A"], np.zeros((1, 1))).column("n_D")


def test_extended_xyz(tmp_path):
    """One block per frame; Lattice = the cell vectors; per-molecule columns broadcast to atoms."""
    from molenv.trajectory import Trajectory

    xtc, pdb = md_files("urea-I-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, stop=2)
    frames = list(traj)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=(2, 160))
    r = ClassificationResult(["I", "IV", "Melt"], [f.time for f in frames], p, centres=np.stack([f.centres(1) for f in frames]),
                             boxes=np.stack([f.box for f in frames]), coordination=np.full((2, 160), 25))
    path = write_extxyz(tmp_path / "c.extxyz", frames, r, threshold=0.5, region=Region("z", 5.0, 4.0), probabilities=True)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * (1280 + 2)
    header = lines[1]
    lattice = [float(x) for x in header.split('Lattice="')[1].split('"')[0].split()]
    assert np.allclose(np.reshape(lattice, (3, 3)), frames[0].box_matrix(), atol=1e-6)
    props = header.split("Properties=")[1].split()[0].split(":")
    spec = list(zip(props[0::3], props[1::3], props[2::3]))
    assert spec[:6] == [("species", "S", "1"), ("pos", "R", "3"), ("molecule", "I", "1"), ("class", "S", "1"), ("class_index", "I", "1"), ("p_max", "R", "1")]
    assert [s[0] for s in spec[6:]] == ["cn", "surface", "region", "p_I", "p_IV", "p_Melt"]
    assert 'pbc="T T T"' in header and "Time=" in header
    width = sum(int(s[2]) for s in spec)
    atoms = [l.split() for l in lines[2:1282]]
    assert all(len(a) == width for a in atoms)
    labels = r.labels(0.5)[0]
    for a in atoms[:80]:
        m = int(a[4]) - 1
        assert a[5] == r.label_names[labels[m]] and int(a[6]) == labels[m]
    assert [a[0] for a in atoms[:8]] == ["C", "O", "N", "H", "H", "N", "H", "H"]
    assert np.allclose([[float(x) for x in a[1:4]] for a in atoms], frames[0].positions, atol=1e-5)
    with pytest.raises(AnalysisError, match="frame 0 is at time"):
        write_extxyz(tmp_path / "x.extxyz", frames[1:], r)
