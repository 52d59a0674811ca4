"""`molenv classify`: the reference SF model on real frames (form I dump -> all form I; the
form I / form IV interface -> both, separated by the region filter), serial vs
multiprocessing backends, the GNN paths (TorchScript export and Lightning checkpoint give the
same probabilities as the network itself), and error messages."""
from __future__ import annotations

import numpy as np
import pytest

from _analysis_support import UREA_TYPES, md_files, run_cli, urea_model  # noqa: F401
from molenv.analysis import Region, population_table, read_table
from molenv.classification import classify_trajectory
from molenv.models import ClassifierError, SFFrameClassifier, open_model
from molenv.trajectory import Trajectory


def test_reference_dump_is_form_I(tmp_path, urea_model, reference_dir):
    dump = reference_dir / "urea" / "formI_6x6x6_molstruc.dump"
    out = tmp_path / "out"
    code = run_cli(["classify", "--model", urea_model, "-t", dump, "--type-elements", UREA_TYPES, "--out", out, "--no-progress",
                    "--table-format", "csv", "--per-molecule", "dat"])
    assert code == 0
    table = read_table(out / "populations.csv")
    assert table.column("time").tolist() == [0.0, 10.0]
    assert np.all(table.column("n_I") == 432) and np.all(table.column("nmol") == 432)
    assert np.all(table.column("core_n_I") == 432) and np.all(table.column("surface_nmol") == 0)
    assert np.all(table.column("soft_I") > 431.99)
    rows = read_table(out / "molecules.dat")
    assert rows.data.shape == (2 * 432, 3 + 7 + 2) and np.all(rows.column("label") == 0) and np.all(rows.column("cn") >= 20)
    assert (out / "populations.png").stat().st_size > 0 and not (out / "classes.extxyz").exists()


@pytest.fixture(scope="module")
def interface(reference_dir, urea_model):
    """The reference urea form I / form IV interface (LAMMPS data file, 1200 molecules; N1/N2 pinned by type)."""
    traj = Trajectory(reference_dir / "urea" / "formI_formIV_interface.data", "urea", name_map={"4": "N1", "5": "N2"})
    return traj, classify_trajectory(traj, SFFrameClassifier(urea_model), progress=False)


def test_interface_has_both_forms_and_the_region_separates_them(interface):
    traj, result = interface
    counts = population_table(result, 0.5)
    n_I, n_IV = counts.column("n_I")[0], counts.column("n_IV")[0]
    assert n_I > 150 and n_IV > 500 and counts.column("nmol")[0] == 1200
    z = result.centres[0, :, 2]
    labels = result.labels(0.5)[0]
    iv_side = np.median(z[labels == 1])
    i_side = np.median(z[labels == 0])
    assert iv_side < i_side  # form IV below, form I above the interface (z 102..168 A)
    below = population_table(result, 0.5, region=Region("z", iv_side, 8.0))
    above = population_table(result, 0.5, region=Region("z", i_side, 8.0))
    assert below.column("n_IV")[0] > 0.9 * below.column("nmol")[0] and below.column("n_I")[0] == 0
    assert above.column("n_I")[0] > 0.6 * above.column("nmol")[0] and above.column("n_IV")[0] == 0
    assert above.column("nmol")[0] < 400 and below.column("nmol")[0] < 400


def test_interface_cli_region_and_xyz(tmp_path, urea_model, reference_dir, interface):
    _, result = interface
    iv_side = np.median(result.centres[0, result.labels(0.5)[0] == 1, 2])
    out = tmp_path / "out"
    code = run_cli(["classify", "--model", urea_model, "-t", reference_dir / "urea" / "formI_formIV_interface.data", "--name-map", "4:N1,5:N2",
                    "--region", f"z:{iv_side}:8", "--xyz", "--out", out, "--no-progress", "--no-plot", "--per-molecule", "none"])
    assert code == 0
    table = read_table(out / "populations.dat")
    assert table.column("n_I")[0] == 0 and table.column("n_IV")[0] > 0.9 * table.column("nmol")[0]
    assert any("region: |z - " in c for c in table.comments)
    header = (out / "classes.extxyz").read_text().splitlines()[1]
    assert "region:R:1" in header and not (out / "populations.png").exists() and not (out / "molecules.npz").exists()


def test_serial_and_multiprocessing_give_identical_results(urea_model):
    xtc, pdb = md_files("urea-IV-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, stop=4)
    classifier = SFFrameClassifier(urea_model)
    serial = classify_trajectory(traj, classifier, progress=False)
    parallel = classify_trajectory(traj, classifier, backend="multiprocessing", n_workers=2, progress=True)
    assert serial.n_frames == 4 and serial.n_molecules == parallel.n_molecules
    for name in ("times", "frames", "probabilities", "centres", "boxes", "coordination"):
        assert np.array_equal(getattr(serial, name), getattr(parallel, name)), name
    sliced = classify_trajectory(Trajectory(xtc, "urea", topology=pdb, start=1, stop=4, step=2), classifier, backend="multiprocessing", n_workers=2, progress=False)
    assert sliced.frames.tolist() == [1, 3] and np.array_equal(sliced.probabilities, serial.probabilities[[1, 3]])


@pytest.fixture(scope="module")
def tiny_gnn(tmp_path_factory):
    """A small untrained graph classifier, saved as a Lightning checkpoint and as TorchScript."""
    import lightning as L
    import torch

    from molenv.gnn.export import export_torchscript
    from molenv.gnn.lightning import GNNClassifier

    torch.manual_seed(0)
    net = GNNClassifier(["I", "IV", "Melt"], hidden=32, conv_channels=16, num_radial=8, dropout=0.0).eval()
    folder = tmp_path_factory.mktemp("gnn")
    ckpt = folder / "tiny.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": dict(net.hparams), "pytorch-lightning_version": L.__version__}, ckpt)
    return net, ckpt, export_torchscript(net.model, folder / "tiny.pt", net.form_names)


def test_gnn_torchscript_and_checkpoint(tmp_path, tiny_gnn):
    import torch

    from molenv.gnn.graph import frame_to_graph
    from molenv.gnn.model import edge_lengths

    net, ckpt, script = tiny_gnn
    xtc, pdb = md_files("urea-I-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, start=1, stop=2)
    by_script = open_model(script)
    by_ckpt = open_model(ckpt)
    assert (by_script.form, by_ckpt.form) == ("torchscript", "checkpoint") and by_script.classes == ["I", "IV", "Melt"]
    a = classify_trajectory(traj, by_script, progress=False)
    b = classify_trajectory(traj, by_ckpt, progress=False)
    assert a.probabilities.shape == (1, 160, 3) and a.topology_probabilities.shape == (1, 160, 2) and a.frames.tolist() == [1]
    assert np.allclose(a.probabilities.sum(axis=2), 1.0, atol=1e-6)
    g = frame_to_graph(traj[0])
    with torch.no_grad():
        out = net.model(g.z, g.edge_index, edge_lengths(g.pos, g.edge_index, g.edge_shift), g.molecule, g.num_molecules)
    assert np.allclose(a.probabilities[0], out.polymorph_logits.softmax(-1).numpy(), atol=1e-6)
    assert np.allclose(b.probabilities, a.probabilities, atol=1e-6) and np.allclose(b.topology_probabilities, a.topology_probabilities, atol=1e-6)
    out_dir = tmp_path / "out"
    assert run_cli(["classify", "--model", script, "--spec", "urea", "-t", xtc, "--topology", pdb, "--start", "1", "--stop", "2", "--out", out_dir,
                    "--no-progress", "--per-molecule", "dat", "--threshold", "0"]) == 0
    rows = read_table(out_dir / "molecules.dat")
    assert rows.names[-2:] == ["p_bulk", "p_surface"] and np.allclose(rows.data[:, 3:6].reshape(1, 160, 3), a.probabilities, atol=1e-9)


def test_gnn_model_file_equals_torch_and_the_spec(tmp_path, tiny_gnn):
    """A GNN model file (kind gnn, what MOLENV_CLASSIFY reads) classifies in Python through
    the numpy specification: the torch network's probabilities to 1e-6 (float32 torch against
    float64 numpy), the spec inferred from its elements, and the CLI reads it."""
    from molenv.gnn.export import export_model_file, molecule_elements
    from molenv.spec import load_spec

    net, ckpt, script = tiny_gnn
    path = export_model_file(net.model, tmp_path / "tiny.molenv", net.form_names, molecule_elements(load_spec("urea")))
    xtc, pdb = md_files("urea-I-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, start=1, stop=2)
    by_file = open_model(path)
    assert by_file.kind == "gnn" and type(by_file).__name__ == "GNNModelFileClassifier"
    a = classify_trajectory(traj, by_file, progress=False)
    b = classify_trajectory(traj, open_model(script), progress=False)
    assert np.allclose(a.probabilities, b.probabilities, atol=1e-6, rtol=0)
    assert np.allclose(a.topology_probabilities, b.topology_probabilities, atol=1e-6, rtol=0)
    out_dir = tmp_path / "out"
    assert run_cli(["classify", "--model", path, "-t", xtc, "--topology", pdb, "--start", "1", "--stop", "2", "--out", out_dir,
                    "--no-progress", "--per-molecule", "dat", "--threshold", "0"]) == 0  # no --spec: the elements tell urea
    rows = read_table(out_dir / "molecules.dat")
    assert np.allclose(rows.data[:, 3:6].reshape(1, 160, 3), a.probabilities, atol=1e-9)
    with pytest.raises(ClassifierError, match="atomic numbers"):
        by_file.check(load_spec("nicotinamide"))


def test_errors(tmp_path, urea_model, reference_dir, capsys):
    junk = tmp_path / "junk.molenv"
    junk.write_text("not a model\n")
    with pytest.raises(ClassifierError, match=r"junk.molenv: not a molenv model file"):
        open_model(junk)
    with pytest.raises(ClassifierError, match=r"nothere: model file not found"):
        open_model(tmp_path / "nothere")
    dump = reference_dir / "urea" / "formI_6x6x6_molstruc.dump"
    traj = Trajectory(dump, "urea", type_elements=UREA_TYPES)
    with pytest.raises(ClassifierError, match="backend must be one of serial, multiprocessing, dask"):
        classify_trajectory(traj, SFFrameClassifier(urea_model), backend="threads")
    try:
        import dask  # noqa: F401
    except ImportError:
        with pytest.raises(ClassifierError, match=r"the dask backend needs dask: pip install"):
            classify_trajectory(traj, SFFrameClassifier(urea_model), backend="dask")
    assert run_cli(["classify", "--model", urea_model, "-t", dump, "--no-progress", "--out", tmp_path / "x"]) == 2
    assert "cannot tell the atoms' elements" in capsys.readouterr().err
    assert run_cli(["classify", "--model", urea_model, "-t", dump, "--type-elements", UREA_TYPES, "--spec", "nicotinamide", "--out", tmp_path / "x"]) == 2
    assert "the model is for 8-atom molecules, spec nicotinamide has 15 atoms" in capsys.readouterr().err
    assert run_cli(["classify", "--model", urea_model, "-t", dump, "--type-elements", UREA_TYPES, "--region", "q:1:2", "--out", tmp_path / "x"]) == 2
    assert "region axis must be x, y or z" in capsys.readouterr().err


def test_dask_backends_when_installed(urea_model):
    """dask is optional: where it is installed, local dask processes and a dask.distributed
    cluster (the scheduler-address path) give the serial result."""
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    xtc, pdb = md_files("urea-IV-100K")
    traj = Trajectory(xtc, "urea", topology=pdb, stop=3)
    classifier = SFFrameClassifier(urea_model)
    serial = classify_trajectory(traj, classifier, progress=False)
    local = classify_trajectory(traj, classifier, backend="dask", n_workers=2, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = classify_trajectory(traj, classifier, backend="dask", n_workers=2, progress=False, scheduler=cluster.scheduler_address)
    for other in (local, remote):
        assert np.array_equal(other.probabilities, serial.probabilities) and np.array_equal(other.coordination, serial.coordination)


def test_spec_from_model():
    """Without --spec: the model's `meta molecule`, else the one shipped spec of the same
    geometry (`spec_for_model`, what `infer_spec` falls back to; --spec winning over the model
    is tests/test_model_spec.py's)."""
    from molenv.spec import SpecError, spec_for_model

    assert spec_for_model(8, 1, [(1, 2), (3, 6)]).name == "urea"
    assert spec_for_model(8, 1, [(1, 2), (3, 6)], molecule="nicotinamide").name == "nicotinamide"
    with pytest.raises(SpecError, match="no shipped spec fits"):
        spec_for_model(8, 2, [(1, 2)])
    with pytest.raises(SpecError, match="does not tell its molecule"):
        spec_for_model()  # a GNN without a molecule name: no geometry to match
