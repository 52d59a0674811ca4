"""`molenv reanalyse --backend multiprocessing|dask`: PLUMED over blocks of frames on worker
processes (`molenv.plumed.block_reanalysis`, scheduled by `molenv.frameblocks`).

- on a committed MD trajectory, the files of a dask.distributed LocalCluster of 2 workers
  (COLVAR with a STRIDE that does not divide the block starts, the action's PROB_FILE with
  its FILE_STRIDE, DUMPATOMS, a MOVINGRESTRAINT whose schedule follows the step) and the
  --analyse results are those of the serial run, byte for byte; a file already there is
  backed up as PLUMED does;
- inputs whose actions carry history from frame to frame are refused, naming the action
  (shortcuts expanded by PLUMED itself), before any frame is read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _analysis_support import md_files, run_cli, urea_model  # noqa: F401
from molenv.frameblocks import check_backend, frame_blocks
from molenv.plumed.reanalysis import ReanalyseError, reanalyse

OUTPUTS = ("colvar", "prob.dat", "atoms.xyz")


def test_frame_blocks():
    frames = np.arange(3, 40, 2)
    blocks = frame_blocks(frames, 2)
    assert len(blocks) == 8 and np.array_equal(np.concatenate(blocks), frames)
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert [len(b) for b in frame_blocks([5, 6], 4)] == [1, 1] and frame_blocks([], 2) == []
    with pytest.raises(ValueError, match="backend must be one of serial, multiprocessing, dask"):
        check_backend("threads", 2, None)
    with pytest.raises(ValueError, match="a dask scheduler address needs backend 'dask'"):
        check_backend("multiprocessing", 2, "tcp://x:8786")


def _input(path: Path, model: Path) -> Path:
    from molenv.plumed.kernel import module_path

    path.write_text(
        f"UNITS LENGTH=A\nLOAD FILE={module_path()}\n"
        f"c: MOLENV_CLASSIFY MODEL={model} MOLECULES=1-1280 PROB_FILE=prob.dat FILE_STRIDE=3\n"
        "d: DISTANCE ATOMS=1,900\nv: VOLUME\n"
        "r: MOVINGRESTRAINT ARG=d AT0=10 STEP0=0 KAPPA0=1 AT1=12 STEP1=30 KAPPA1=2\n"
        "PRINT ARG=c.*,d,v,r.bias FILE=colvar FMT=%.17g STRIDE=2\n"
        "DUMPATOMS ATOMS=1-20 FILE=atoms.xyz STRIDE=5\n"
    )
    return path


def test_dask_cluster_gives_the_serial_files(tmp_path, urea_model, monkeypatch):
    """Frames 1..18 of urea-I-100K (1280 atoms) through PLUMED serially and on a LocalCluster
    of 2 dask workers (8 blocks of 2-3 frames): every output file and the --analyse result
    are identical, bytes and numbers."""
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    from molenv.analysis import ClassificationResult

    xtc, pdb = md_files("urea-I-100K")
    runs = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        for name, options in (("serial", {}), ("dask", {"--backend": "dask", "--workers": "2", "--dask-scheduler": cluster.scheduler_address})):
            work = tmp_path / name
            work.mkdir()
            _input(work / "plumed.dat", urea_model)
            (work / "colvar").write_text("an earlier COLVAR\n")  # PLUMED backs it up; so does the join
            monkeypatch.chdir(work)
            argv = ["reanalyse", "--plumed", "plumed.dat", "-t", xtc, "--topology", pdb, "--start", "1", "--stop", "19", "--no-progress",
                    "--analyse", "--per-molecule", "npz", "--no-plot", "--out", "out"]
            assert run_cli(argv + [x for kv in options.items() for x in kv]) == 0
            runs[name] = work
    serial, dask = runs["serial"], runs["dask"]
    for name in OUTPUTS + ("bck.0.colvar", "out/populations.dat"):
        assert (dask / name).read_bytes() == (serial / name).read_bytes(), name
    assert not list(dask.glob(".molenv-reanalyse-*"))  # the blocks' scratch directory is gone
    colvar = (serial / "colvar").read_text().splitlines()
    assert colvar[0].startswith("#! FIELDS time c.n_I") and len(colvar) == 1 + 9  # steps 2, 4, ..., 18
    assert len((serial / "atoms.xyz").read_text().splitlines()) == 3 * 22  # steps 5, 10, 15
    a, b = (ClassificationResult.load(d / "out" / "molecules.npz") for d in (serial, dask))
    assert np.array_equal(a.frames, b.frames) and list(a.frames) == list(range(3, 19, 3))  # FILE_STRIDE=3
    assert np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.coordination, b.coordination)
    log = (dask / "plumed.log").read_text()
    assert log.startswith("# molenv reanalyse: block 1 of 8, frames 1-3\n") and log.count("PLUMED: Action MOLENV_CLASSIFY") == 8


def test_local_processes_and_python_api(tmp_path, urea_model, monkeypatch):
    """``reanalyse(..., backend="multiprocessing")`` in Python: the same COLVAR and records
    as the serial run, frames in order, with --step."""
    from molenv.modelfile import read_model
    from molenv.plumed.inputs import classify_actions
    from molenv.plumed.reanalysis import ProbabilityCollector

    xtc, pdb = md_files("urea-I-100K")
    done = {}
    for backend in ("serial", "multiprocessing"):
        work = tmp_path / backend
        work.mkdir()
        plumed_dat = _input(work / "plumed.dat", urea_model)
        monkeypatch.chdir(work)
        action = classify_actions(plumed_dat)[0]
        model = read_model(urea_model)
        collect = ProbabilityCollector(action, action.molecules(1280, 8), model.descriptors.centre_atom, np.zeros(1280, dtype=np.int64), model.classes,
                                       with_coordination=False)
        done[backend] = reanalyse("plumed.dat", xtc, pdb, start=2, stop=30, step=2, progress=False, collect=collect, backend=backend, n_workers=2)
    assert done["multiprocessing"].frames == done["serial"].frames == list(range(2, 30, 2))
    assert done["multiprocessing"].times == done["serial"].times
    for name in OUTPUTS:
        assert (tmp_path / "multiprocessing" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes(), name
    records = [(r.frame, r.probabilities) for r in done["multiprocessing"].records]
    assert [f for f, _ in records] == [r.frame for r in done["serial"].records] == [6, 12, 18, 24]  # FILE_STRIDE=3 of the steps fed
    assert all(np.array_equal(p, r.probabilities) for (_, p), r in zip(records, done["serial"].records))


@pytest.mark.parametrize("lines, named", [
    ("a: AVERAGE ARG=d\nPRINT ARG=a FILE=x", "the action AVERAGE accumulates over frames"),
    ("h: HISTOGRAM ARG=d GRID_MIN=0 GRID_MAX=20 GRID_BIN=10 BANDWIDTH=0.5\nDUMPGRID ARG=h FILE=h.grid", "the action HISTOGRAM accumulates"),
    ("m: METAD ARG=d PACE=5 HEIGHT=1 SIGMA=0.2 FILE=HILLS", "the action METAD a bias that builds up or adapts"),
    ("COMMITTOR ARG=d STRIDE=1 BASIN_LL1=0 BASIN_UL1=1", "the action COMMITTOR stops the run at the first frame"),
    ("DUMPMASSCHARGE FILE=mc", "the action DUMPMASSCHARGE writes its file once"),
    ("PRINT ARG=d FILE=x RESTART=YES", "RESTART=YES in 'PRINT ARG=d FILE=x RESTART=YES' appends"),
    ("n: COORDINATION GROUPA=1-10 R_0=3 NLIST NL_CUTOFF=8 NL_STRIDE=10", "NLIST \\(a neighbour list rebuilt every NL_STRIDE steps\\)"),
])
def test_history_refused(tmp_path, monkeypatch, capsys, lines, named):
    """Inputs with an action that carries history from frame to frame: refused before any
    frame is read, naming the action (PLUMED's own names, also for shortcuts), with the way
    out (--backend serial); the current directory is left as it was."""
    xtc, pdb = md_files("urea-I-100K")
    monkeypatch.chdir(tmp_path)
    Path("p.dat").write_text(f"UNITS LENGTH=A\nd: DISTANCE ATOMS=1,900\n{lines}\n")
    with pytest.raises(ReanalyseError, match=f"p.dat: {named}.*run it with --backend serial"):
        reanalyse("p.dat", xtc, pdb, stop=4, progress=False, backend="multiprocessing", n_workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.dat", "plumed.log"]  # the log of PLUMED reading the input
    assert run_cli(["reanalyse", "--plumed", "p.dat", "-t", xtc, "--topology", pdb, "--stop", "4", "--backend", "multiprocessing", "--no-progress"]) == 2
    assert "molenv reanalyse: error: p.dat:" in capsys.readouterr().err


def test_plumed_errors_name_the_input(tmp_path, monkeypatch):
    """PLUMED's errors, at start-up or in a block on a worker, name the user's input and log,
    not the blocks' scratch copies (which are removed)."""
    xtc, pdb = md_files("urea-I-100K")
    monkeypatch.chdir(tmp_path)
    Path("typo.dat").write_text("d: DISTANCE ATOMS=1,900\nPRINT ARG=e FILE=x\n")
    with pytest.raises(ReanalyseError, match=r"^typo.dat: PLUMED could not start: .*\(log: plumed.log\)$"):
        reanalyse("typo.dat", xtc, pdb, stop=2, progress=False, backend="multiprocessing", n_workers=2)
    assert "PRINT" in Path("plumed.log").read_text() and not list(tmp_path.glob(".molenv-reanalyse-*"))


def test_backend_errors(tmp_path, monkeypatch):
    xtc, pdb = md_files("urea-I-100K")
    monkeypatch.chdir(tmp_path)
    Path("p.dat").write_text("d: DISTANCE ATOMS=1,900\nPRINT ARG=d FILE=x\n")
    with pytest.raises(ReanalyseError, match="backend must be one of serial, multiprocessing, dask, got 'threads'"):
        reanalyse("p.dat", xtc, pdb, stop=2, progress=False, backend="threads")
    with pytest.raises(ReanalyseError, match="a dask scheduler address needs backend 'dask', not 'serial'"):
        reanalyse("p.dat", xtc, pdb, stop=2, progress=False, scheduler="tcp://localhost:1")


def test_block_in_a_child_process(tmp_path):
    """`run_block_in_child` (a dask.distributed worker's way to run a block): the result and
    files of `run_block` in this process; the block's errors come back as they were raised."""
    from molenv.plumed.block_reanalysis import BlockJob, run_block, run_block_in_child

    xtc, pdb = md_files("urea-I-100K")
    (tmp_path / "input.dat").write_text("UNITS LENGTH=A\nd: DISTANCE ATOMS=1,900\nPRINT ARG=d FILE=colvar FMT=%.17g\n")

    def job(name, trajectory=str(xtc)):
        (tmp_path / name).mkdir()
        return BlockJob(0, np.arange(3, 7), tmp_path / "input.dat", tmp_path / name, tmp_path / f"{name}.log", trajectory, str(pdb), None, None, 0.001)

    here, child = run_block(job("here")), run_block_in_child(job("child"))
    assert child.frames == here.frames == [3, 4, 5, 6] and child.times == here.times
    assert (tmp_path / "child" / "colvar").read_bytes() == (tmp_path / "here" / "colvar").read_bytes()
    assert sorted(p.name for p in (tmp_path / "child").iterdir()) == ["colvar"]  # the job and result are not PLUMED's outputs
    with pytest.raises(ReanalyseError, match="nothing.xtc"):
        run_block_in_child(job("missing", str(tmp_path / "nothing.xtc")))


def test_merge_outputs(tmp_path):
    """The join itself: the first block's header, then every block's lines in order (a block
    that printed nothing adds nothing), files in sub-directories, PLUMED's backup of a file
    already there; headers that differ are refused."""
    from molenv.plumed.block_reanalysis import merge_outputs

    blocks = [tmp_path / f"b{k}" for k in range(3)]
    for b in blocks:
        (b / "sub").mkdir(parents=True)
    (blocks[0] / "cv").write_text("")  # opened, nothing printed yet (STRIDE)
    (blocks[1] / "cv").write_text("#! FIELDS time d\n#! SET min_d 0\n 1 0.5\n")
    (blocks[2] / "cv").write_text("#! FIELDS time d\n#! SET min_d 0\n 2 0.6\n 3 0.7\n")
    for k, b in enumerate(blocks):
        (b / "sub" / "a.xyz").write_text(f"1\n\nX {k} 0 0\n")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "cv").write_text("old\n")
    assert sorted(p.relative_to(out).as_posix() for p in merge_outputs(blocks, out)) == ["cv", "sub/a.xyz"]
    assert (out / "cv").read_text() == "#! FIELDS time d\n#! SET min_d 0\n 1 0.5\n 2 0.6\n 3 0.7\n"
    assert (out / "bck.0.cv").read_text() == "old\n"
    assert (out / "sub" / "a.xyz").read_text() == "".join(f"1\n\nX {k} 0 0\n" for k in range(3))
    (blocks[2] / "cv").write_text("#! FIELDS time e\n 2 0.6\n")
    with pytest.raises(ReanalyseError, match=r"cv: the blocks wrote different headers \('#! FIELDS time e' after '#! FIELDS time d"):
        merge_outputs(blocks, out)
