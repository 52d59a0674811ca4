"""Generate the MOLENV_CLASSIFY regression tests: small systems, small test models,
PLUMED inputs and the reference outputs (all committed).

    .venv/bin/python regtest/generate.py

The references are NOT what the action printed: they are computed here with the
independent brute-force implementation in regtest/bruteforce.py (explicit periodic
image enumeration, numpy network of molenv.modelfile, plain path formula, and
central finite differences for the forces).

Test molecule ("toy", 5 atoms X A B H C): centre X, v1 = X->A, v2 = B->C; atom H is
used by no descriptor.  Test models have a 3.5-4.5 A cutoff so that 10 A boxes
are allowed (every perpendicular cell height must be >= 2*rmax).  The descriptors
are listed in a shuffled kind order to exercise the action's internal reordering.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "py"))

import bruteforce as bf  # noqa: E402
from molenv.descriptors import DescriptorSet, SymmetryFunction  # noqa: E402
from molenv.modelfile import Model, Network, read_model, write_model  # noqa: E402

LIB = "@MOLENV_LIB@"  # replaced by regtest/run.py with the compiled module's path
TEMPLATE = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [-0.5, 1.1, 0.0], [0.3, -0.9, 0.6], [-0.6, -1.0, 0.4]])
ELEMENTS = ["X", "A", "B", "H", "C"]
APM = len(TEMPLATE)
ORTHO = np.diag([10.0, 10.5, 11.0])
TRICLINIC = np.array([[10.2, 0.0, 0.0], [2.5, 9.8, 0.0], [-1.8, 2.2, 10.4]])
FMT = "%.17g"


# ----------------------------------------------------------------------------- models


def toy_descriptors() -> DescriptorSet:
    sf = SymmetryFunction
    functions = [
        sf("S3", 1, (0.3, 1.0)),
        sf("S1", None, (3.0, 1.5)),
        sf("S4", 2, (2.0,)),
        sf("S2", None, (1.3,)),
        sf("S1", None, (3.8, 0.8)),
        sf("S3", 2, (-0.5, 3.0)),
        sf("S4", 1, (2.5,)),
        sf("S2", None, (2.1,)),
        sf("S3", 1, (-0.4, 2.0)),
        sf("S3", 2, (1.2, 1.5)),  # centre outside [-1, 1], allowed
    ]
    return DescriptorSet(APM, 1, [(1, 2), (3, 5)], 3.5, 4.5, functions)


def toy_model(name, classes, hidden_sizes, hidden, output, seed, G_train) -> Model:
    rng = np.random.default_rng(seed)
    d = toy_descriptors()
    sizes = [d.n_features, *hidden_sizes, len(classes)]
    weights = [rng.normal(scale=1.5, size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(scale=0.5, size=b) for b in sizes[1:]]
    span = G_train.max(axis=0) - G_train.min(axis=0)
    stretch = np.where(span > 0, 2.0 / np.where(span > 0, span, 1.0), 1.0)
    net = Network(G_train.mean(axis=0), stretch, weights, biases, hidden, output)
    return Model(name, classes, d, net, {"purpose": "molenv regression tests", "seed": str(seed)})


# ----------------------------------------------------------------------------- systems


def rotation(rng, scale=None):
    """Random rotation matrix (uniform, or small with angle ~ scale)."""
    if scale is None:
        q = rng.normal(size=4)
    else:
        q = np.concatenate([[1.0], rng.normal(scale=scale / 2, size=3)])
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def place_centres(rng, nmol, box=None, radius=None, dmin=2.8):
    centres = []
    while len(centres) < nmol:
        if box is not None:
            x = rng.uniform(size=3) @ box
        else:
            x = rng.uniform(-radius, radius, size=3)
            if np.linalg.norm(x) > radius:
                continue
        if all(np.linalg.norm(bf.min_image_vector(x - c, box)) >= dmin for c in centres):
            centres.append(x)
    return np.array(centres)


def frames_of(rng, centres, box, nframes, near_face=3):
    """Frames of molecules around the centres (wrapped into the box if periodic)."""
    centres = centres.copy()
    if box is not None:
        # put a few centres next to cell faces so that their molecules are split
        for m in range(near_face):
            frac = centres[m] @ np.linalg.inv(box)
            frac[m % 3] = 0.01 + 0.005 * m
            centres[m] = frac @ box
    rots = [rotation(rng) for _ in centres]
    frames = []
    for f in range(nframes):
        if f:
            centres = centres + rng.normal(scale=0.12, size=centres.shape)
            rots = [rotation(rng, 0.15) @ r for r in rots]
        pos = np.concatenate([c + TEMPLATE @ r.T for c, r in zip(centres, rots)])
        if box is not None:
            frac = pos @ np.linalg.inv(box)
            pos = (frac - np.floor(frac)) @ box
        frames.append(pos)
    return frames


def count_split(pos, box):
    n = 0
    for m in range(len(pos) // APM):
        block = pos[m * APM : (m + 1) * APM]
        if np.abs(block - block[0]).max() > 3.0:
            n += 1
    return n


# ----------------------------------------------------------------------------- files


def write_xyz(path, frames, boxes, scale=1.0, order=None):
    """xyz for `plumed driver --ixyz`; positions and boxes in Angstrom, times `scale`."""
    lines = []
    for pos, box in zip(frames, boxes):
        if order is not None:
            pos = pos[order]
        lines.append(str(len(pos)))
        if box is None:
            lines.append("0 0 0")
        elif np.count_nonzero(box - np.diag(np.diag(box))) == 0:
            lines.append(" ".join("%.12f" % (x * scale) for x in np.diag(box)))
        else:
            lines.append(" ".join("%.12f" % (x * scale) for x in box.ravel()))
        for k, x in enumerate(pos):
            el = ELEMENTS[(order[k] if order is not None else k) % APM]
            lines.append(f"{el} " + " ".join("%.12f" % (v * scale) for v in x))
    Path(path).write_text("\n".join(lines) + "\n")


def read_back(frames, boxes, scale=1.0):
    """Positions as the driver will read them (rounded like the written text), in A."""
    rt = lambda a: None if a is None else np.array([[float("%.12f" % (v * scale)) / scale for v in row] for row in np.atleast_2d(a)])
    return [rt(p) for p in frames], [None if b is None else rt(b) for b in boxes]


def write_table(path, fields, rows):
    out = ["#! FIELDS " + " ".join(fields)]
    for row in rows:
        out.append(" " + " ".join(str(int(x)) if isinstance(x, (int, np.integer)) else FMT % x for x in row))
    Path(path).write_text("\n".join(out) + "\n")


def write_config(path, arg, rtol=1e-9, atol=1e-11, note=""):
    text = f"# {note}\n" if note else ""
    text += f"arg={arg}\nrtol={rtol}\natol={atol}\n"
    Path(path).write_text(text)


def fresh(name):
    d = HERE / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


def molecules_of(nmol, order=None):
    if order is None:
        return [list(range(m * APM, (m + 1) * APM)) for m in range(nmol)]
    inv = np.argsort(order)
    return [[int(inv[m * APM + a]) for a in range(APM)] for m in range(nmol)]


def colvar_rows(label, model, results, extra=()):
    fields = ["time"] + [f"{label}.n_{c}" for c in model.classes] + [f"{label}.f_{c}" for c in model.classes] + [f"{label}.nmol"]
    if results[0].s is not None:
        fields += [f"{label}.s", f"{label}.z"]
    rows = []
    for t, r in enumerate(results):
        v = bf.component_values(model, r)
        rows.append([float(t)] + [v[f.split(".", 1)[1]] for f in fields[1:]])
    return fields, rows


def permol_rows(model, results, stride, what):
    rows = []
    for t, r in enumerate(results):
        if t % stride:
            continue
        data = r.p if what == "prob" else r.G
        for m in range(len(data)):
            rows.append([float(t), m + 1, *data[m]])
    names = model.classes if what == "prob" else [f"sf{i + 1}" for i in range(model.descriptors.n_features)]
    return ["time", "mol", *names], rows


def write_matrix_dump(path, label, columns, per_frame):
    """What ``DUMPVECTOR ARG=<label> PRINT_ONE_FILE`` prints of a MOLENV_PROBABILITIES
    matrix: per frame a header, then one row per molecule (``parameter``, from 0) with one
    column per class; per_frame: (N, K) arrays."""
    header = "#! FIELDS " + " ".join(["time", "parameter", *(f"{label}.{c}" for c in columns)])
    out = []
    for t, p in enumerate(per_frame):
        out.append(header)
        out += [" " + " ".join([FMT % float(t), str(m), *(FMT % x for x in row)]) for m, row in enumerate(p)]
    Path(path).write_text("\n".join(out) + "\n")


def print_line(label, model, with_path, extra=""):
    args = [f"{label}.n_{c}" for c in model.classes] + [f"{label}.f_{c}" for c in model.classes] + [f"{label}.nmol"]
    if with_path:
        args += [f"{label}.s", f"{label}.z"]
    return f"PRINT ARG={','.join(args)}{extra} FILE=colvar_{label} FMT={FMT}"


# ----------------------------------------------------------------------------- tests


def main():
    rng = np.random.default_rng(20240611)
    nmol = 20
    ortho_frames = frames_of(rng, place_centres(rng, nmol, ORTHO), ORTHO, 3)
    tric_frames = frames_of(rng, place_centres(rng, nmol, TRICLINIC), TRICLINIC, 3)
    cluster_frames = frames_of(rng, place_centres(rng, 14, None, radius=6.0), None, 2)
    assert count_split(ortho_frames[0], ORTHO) >= 2 and count_split(tric_frames[0], TRICLINIC) >= 2
    for box in (ORTHO, TRICLINIC):
        heights = 1.0 / np.linalg.norm(np.linalg.inv(box), axis=0)
        assert heights.min() >= 9.0, heights

    mols = molecules_of(nmol)
    G_train = bf.symmetry_functions(toy_descriptors_model(), bf.System(ortho_frames[0], ORTHO, mols))
    models = {
        "softmax": toy_model("toy softmax (sigmoid hidden)", ["A", "B", "Melt"], [7, 6], "sigmoid", "softmax", 1, G_train),
        "sigmoid": toy_model("toy sigmoid outputs (tanh hidden)", ["I", "form_II", "Melt", "X9"], [8], "tanh", "sigmoid", 2, G_train),
        "softplus": toy_model("toy softmax (softplus hidden)", ["A", "B", "C"], [5, 5, 4], "softplus", "softmax", 3, G_train),
    }

    def model_file(d, key):
        path = write_model(models[key], d / f"{key}.molenv")
        return read_model(path)  # what the action reads

    n_atoms = nmol * APM

    # -- orthorhombic, nm input, no UNITS; path (linear images over a class subset);
    #    per-molecule files every 2 frames; per-molecule vectors summed by SUM
    path_ab = bf.Path([0, 1], np.array([[0.9 - 0.2 * i, 0.1 + 0.2 * i] for i in range(5)]), 20.0)
    for name, scale, units, threads in [("rt-ortho-nm", 0.1, "", ""), ("rt-ortho-A", 1.0, "UNITS LENGTH=A\n", " NUM_THREADS=2")]:
        d = fresh(name)
        m = model_file(d, "softmax")
        write_xyz(d / "traj.xyz", ortho_frames, [ORTHO] * 3, scale)
        frames, boxes = read_back(ortho_frames, [ORTHO] * 3, scale)
        res = [bf.evaluate(m, bf.System(p, b, mols), path=path_ab) for p, b in zip(frames, boxes)]
        (d / "plumed.dat").write_text(
            f"{units}LOAD FILE={LIB}\n"
            f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{n_atoms}{threads} ...\n"
            "   PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 PATH_NIMAGES=5 LAMBDA=20\n"
            "   PROB_FILE=prob.dat SF_FILE=sf.dat FILE_STRIDE=2 PROB_VECTORS\n...\n"
            "sp: SUM ARG=c.p_A PERIODIC=NO\n"
            f"{print_line('c', m, True, ',sp')}\n"
        )
        fields, rows = colvar_rows("c", m, res)
        fields.append("sp")
        for row, r in zip(rows, res):
            row.append(float(r.p[:, 0].sum()))
        write_table(d / "colvar_c.reference", fields, rows)
        write_table(d / "prob.dat.reference", *permol_rows(m, res, 2, "prob"))
        write_table(d / "sf.dat.reference", *permol_rows(m, res, 2, "sf"))
        arg = "--plumed plumed.dat --ixyz traj.xyz" + (" --length-units A" if scale == 1.0 else "")
        write_config(d / "config", arg, note=f"orthorhombic 10x10.5x11 A, {nmol} toy molecules, split molecules, input in {'nm' if scale != 1 else 'A'}")

    # -- triclinic, atoms not ordered by molecule (MOLECULEn), sigmoid outputs, explicit
    #    path images over all classes; a second action with a slab along y, 2 threads
    d = fresh("rt-triclinic")
    order = rng.permutation(n_atoms)
    tmols = molecules_of(nmol, order)
    ms = model_file(d, "sigmoid")
    mp = model_file(d, "softplus")
    write_xyz(d / "traj.xyz", tric_frames, [TRICLINIC] * 3, 1.0, order)
    frames, boxes = read_back([f[order] for f in tric_frames], [TRICLINIC] * 3)
    images = np.array([[0.8, 0.2, 0.3, 0.1], [0.5, 0.4, 0.5, 0.3], [0.3, 0.5, 0.2, 0.6], [0.1, 0.9, 0.4, 0.5]])
    path_all = bf.Path([0, 1, 2, 3], images, 50.0)
    region_y = bf.Region(1, 3.0, 2.0, 1.0)
    res_s = [bf.evaluate(ms, bf.System(p, b, tmols), path=path_all) for p, b in zip(frames, boxes)]
    res_r = [bf.evaluate(mp, bf.System(p, b, tmols), region=region_y) for p, b in zip(frames, boxes)]
    mol_kw = " ".join(f"MOLECULE{i + 1}=" + ",".join(str(a + 1) for a in mol) for i, mol in enumerate(tmols))
    img_kw = " ".join(f"PATH_IMAGE{i + 1}=" + ",".join(str(x) for x in img) for i, img in enumerate(images))
    (d / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={LIB}\n"
        f"t: MOLENV_CLASSIFY MODEL=sigmoid.molenv {mol_kw} {img_kw} LAMBDA=50 PROB_FILE=prob.dat\n"
        f"r: MOLENV_CLASSIFY MODEL=softplus.molenv {mol_kw} REGION_AXIS=y REGION_CENTER=3.0 REGION_HALFWIDTH=2.0 REGION_SMOOTHING=1.0 NUM_THREADS=2\n"
        f"{print_line('t', ms, True)}\n{print_line('r', mp, False)}\n"
    )
    write_table(d / "colvar_t.reference", *colvar_rows("t", ms, res_s))
    write_table(d / "colvar_r.reference", *colvar_rows("r", mp, res_r))
    write_table(d / "prob.dat.reference", *permol_rows(ms, res_s, 1, "prob"))
    write_config(d / "config", "--plumed plumed.dat --ixyz traj.xyz --length-units A",
                 note="triclinic cell, shuffled atom order (MOLECULEn), split molecules, slab along the y face normal")

    # -- slabs in an orthorhombic cell: across the periodic boundary, hard cut, along x;
    #    nm input with UNITS LENGTH=A (region lengths in A); the probabilities of every
    #    molecule, also outside the slab, as the MOLENV_PROBABILITIES matrix of a slab's action
    d = fresh("rt-region")
    m = model_file(d, "softmax")
    write_xyz(d / "traj.xyz", ortho_frames, [ORTHO] * 3, 0.1)
    frames, boxes = read_back(ortho_frames, [ORTHO] * 3, 0.1)
    regions = {"a": bf.Region(2, 1.0, 2.0, 1.5), "b": bf.Region(2, 6.0, 2.5, 0.0), "c": bf.Region(0, 5.0, 1.5, 2.0)}
    text = f"UNITS LENGTH=A\nLOAD FILE={LIB}\n"
    results = {}
    for label, reg in regions.items():
        axis = "xyz"[reg.axis]
        text += (f"{label}: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{n_atoms} REGION_AXIS={axis} "
                 f"REGION_CENTER={reg.centre} REGION_HALFWIDTH={reg.halfwidth} REGION_SMOOTHING={reg.smoothing}\n")
        res = results[label] = [bf.evaluate(m, bf.System(p, b, mols), region=reg) for p, b in zip(frames, boxes)]
        assert 0 < res[0].nmol < nmol
        write_table(d / f"colvar_{label}.reference", *colvar_rows(label, m, res))
    text += "pa: MOLENV_PROBABILITIES CLASSIFIER=a\n"
    text += "".join(print_line(label, m, False) + "\n" for label in regions)
    text += f"DUMPVECTOR ARG=pa FILE=probs_a FMT={FMT} PRINT_ONE_FILE STRIDE=1\n"
    (d / "plumed.dat").write_text(text)
    write_matrix_dump(d / "probs_a.reference", "pa", m.classes, [r.p for r in results["a"]])
    write_config(d / "config", "--plumed plumed.dat --ixyz traj.xyz",
                 note="slab regions; input in nm, PLUMED units A; MOLENV_PROBABILITIES of a slab's action: every molecule")

    # -- cluster without periodic boundaries
    d = fresh("rt-nopbc")
    m = model_file(d, "softmax")
    cmols = molecules_of(14)
    write_xyz(d / "traj.xyz", cluster_frames, [None] * 2, 1.0)
    frames, _ = read_back(cluster_frames, [None] * 2)
    reg = bf.Region(0, 0.0, 3.0, 2.0)
    res = [bf.evaluate(m, bf.System(p, None, cmols), path=path_ab) for p in frames]
    res_reg = [bf.evaluate(m, bf.System(p, None, cmols), region=reg) for p in frames]
    (d / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={LIB}\n"
        f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{14 * APM} PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 "
        "PATH_NIMAGES=5 LAMBDA=20 PROB_FILE=prob.dat SF_FILE=sf.dat\n"
        f"g: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{14 * APM} REGION_AXIS=x REGION_CENTER=0 REGION_HALFWIDTH=3 REGION_SMOOTHING=2\n"
        f"{print_line('c', m, True)}\n{print_line('g', m, False)}\n"
    )
    write_table(d / "colvar_c.reference", *colvar_rows("c", m, res))
    write_table(d / "colvar_g.reference", *colvar_rows("g", m, res_reg))
    write_table(d / "prob.dat.reference", *permol_rows(m, res, 1, "prob"))
    write_table(d / "sf.dat.reference", *permol_rows(m, res, 1, "sf"))
    write_config(d / "config", "--plumed plumed.dat --ixyz traj.xyz --length-units A", note="14-molecule cluster, no box")

    # -- forces and virial of a bias on every kind of component: frame 0 orthorhombic,
    #    frame 1 triclinic; reference = central finite differences of the brute force
    d = fresh("rt-forces")
    ma = model_file(d, "softmax")
    mb = model_file(d, "sigmoid")
    fr = [ortho_frames[1], tric_frames[1]]
    bx = [ORTHO, TRICLINIC]
    write_xyz(d / "traj.xyz", fr, bx, 1.0)
    frames, boxes = read_back(fr, bx)
    reg = bf.Region(2, 1.0, 2.0, 2.5)
    restraints = [  # (label, model, component, at, kappa, slope)
        ("c", "n_A", 4.0, 0.7, 0.3),
        ("c", "f_B", 0.2, 30.0, 0.0),
        ("c", "s", 0.5, 8.0, 0.2),
        ("c", "z", 0.1, 20.0, 0.0),
        ("r", "n_form_II", 1.0, 1.3, 0.0),
        ("r", "f_Melt", 0.3, 25.0, -0.4),
        ("r", "nmol", 6.0, 0.5, 0.1),
    ]

    def energy(system):
        rc = bf.component_values(ma, bf.evaluate(ma, system, path=path_ab))
        rr = bf.component_values(mb, bf.evaluate(mb, system, region=reg))
        vals = {"c": rc, "r": rr}
        return sum(0.5 * k * (vals[lab][comp] - at) ** 2 + sl * (vals[lab][comp] - at) for lab, comp, at, k, sl in restraints)

    text = (f"UNITS LENGTH=A\nLOAD FILE={LIB}\n"
            f"c: MOLENV_CLASSIFY MODEL=softmax.molenv MOLECULES=1-{n_atoms} PATH_CLASSES=A,B PATH_START=0.9,0.1 PATH_END=0.1,0.9 "
            "PATH_NIMAGES=5 LAMBDA=20\n"
            f"r: MOLENV_CLASSIFY MODEL=sigmoid.molenv MOLECULES=1-{n_atoms} REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=2.0 "
            "REGION_SMOOTHING=2.5 NUM_THREADS=2\n")
    for i, (lab, comp, at, k, sl) in enumerate(restraints):
        text += f"b{i}: RESTRAINT ARG={lab}.{comp} AT={at} KAPPA={k} SLOPE={sl}\n"
    (d / "plumed.dat").write_text(text)
    ref = []
    used = [mol[a] for mol in mols for a in (0, 1, 2, 4)]  # atoms the descriptors use
    for p, b in zip(frames, boxes):
        system = bf.System(p, b, mols)
        forces, virial = bf.finite_difference_forces(energy, system, h=1e-4, atoms=used)
        ref.append(str(len(p)))
        ref.append(" ".join("%.10e" % x for x in virial.ravel()))
        ref += ["X " + " ".join("%.10e" % x for x in f) for f in forces]
    (d / "forces.reference").write_text("\n".join(ref) + "\n")
    write_config(d / "config", "--plumed plumed.dat --ixyz traj.xyz --length-units A --dump-forces forces "
                 "--dump-forces-fmt %.10e --dump-full-virial", rtol=2e-6, atol=2e-7,
                 note="forces and virial of restraints on n, f, s, z, nmol (with region) vs brute-force finite differences")
    print("generated regression tests in", HERE)

    # -- the GNN kind: regtest/rt-gnn (references from molenv.gnn.numpy_model)
    import generate_gnn

    generate_gnn.main()


def toy_descriptors_model():
    """A Model stub with the toy descriptors (for computing training-range scaling)."""
    d = toy_descriptors()
    net = Network(np.zeros(d.n_features), np.ones(d.n_features), [np.zeros((1, d.n_features))], [np.zeros(1)], "sigmoid", "sigmoid")
    return Model("stub", ["x"], d, net)


if __name__ == "__main__":
    main()
