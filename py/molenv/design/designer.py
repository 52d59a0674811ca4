"""`design_descriptors`: the point-vector descriptors of a molecule chosen from samples of its forms.

The steps, each on the fitting frames of every form (`molenv.design.samples`) and scored
on the held-out frames:

1. **centre**: every heavy atom, every ring centroid and the heavy-atom centroid
   (`molenv.design.geometry.candidate_centres`); score = separability of the forms'
   centre-centre distance distributions within the largest usable cutoff. Among the centres
   within ``CENTRE_TOLERANCE`` of the best score, the one closest to the molecule's centroid
   (a central point moves least when a molecule turns); an atom rather than a centroid
   unless the centroid is more central by over ``CENTRAL_TOLERANCE``.
2. **vectors**: every heavy-atom pair and the plane normals of rings and trigonal centres
   (`geometry.candidate_vectors`; one that the bond graph's symmetry only reverses, urea's
   N1 -> N2, sign-invariant); score = separability of the forms' cos(theta_IJ) (cos^2)
   distributions. The best one first; then, ``n_vectors`` - 1 times, the candidate whose
   cosines together with those of the vectors already chosen separate the forms best (a
   joint histogram), skipping candidates nearly parallel to a chosen one (mean |cos| between
   the two within a molecule above ``PARALLEL_LIMIT``). Candidates that a relabelling of
   equivalent atoms turns into others (urea's O -> N1) are marked: they rely on the input
   files' labelling convention.
3. **cutoff**: candidates are the shell boundaries (minima) of the pooled centre-centre RDF
   and the largest usable cutoff (every perpendicular height of every cell over 2 rc, and
   at most ``max_cutoff``). For each, the selection's linear classifier on the whole
   candidate pool (`molenv.design.selection.Discriminant`) is scored on the held-out
   samples; chosen is the smallest
   cutoff whose macro F1 is within ``CUTOFF_F1_TOLERANCE`` of the best and whose log loss is
   at most ``CUTOFF_LOSS_FACTOR`` x the best log loss. rmin = rc - ``SWITCH_WIDTH`` (the
   published specs switch off over 0.2 A).
4. **functions**: greedy forward selection from the pool at that cutoff
   (`molenv.design.selection.forward_selection`).
5. **expected accuracy**: the held-out macro / micro F1 of the logistic regression and of a
   25-25 sigmoid MLP (scikit-learn, the published architecture) on the chosen functions.

Everything random (subsamples, generated thermal samples, the MLP) draws from one
``seed``: a design is a deterministic function of its inputs and seed.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molenv.augment import expanded, rigid_motion
from molenv.descriptors import DescriptorSet, SymmetryFunction, centre_pairs, compute_descriptors, descriptor_set_to_dict
from molenv.design import geometry
from molenv.design.geometry import Candidate
from molenv.design.output import loss_text
from molenv.design.samples import DesignError, FormSamples, ThermalNoise, from_structure, from_trajectory, parse_labelled
from molenv.design.selection import (Discriminant, PoolSettings, Selection, SelectionSettings, candidate_pool, fit_score, forward_selection, standardise,
                                     stratified_subsample)
from molenv.frames import perpendicular_heights
from molenv.spec import MoleculeSpec, SpecError, load_spec

__all__ = ["design_descriptors", "DesignResult", "resolve_molecule", "CutoffTrial", "Scored"]

CENTRE_TOLERANCE = 0.9  # fraction of the best centre score
CENTRAL_TOLERANCE = 0.1  # Angstrom: an atom centre this close to the centroid as the most central centroid is preferred
PARALLEL_LIMIT = 0.9  # mean |cos| between two vectors of one molecule
CUTOFF_F1_TOLERANCE = 0.005
CUTOFF_LOSS_FACTOR = 2.0
SWITCH_WIDTH = 0.2  # Angstrom
LOWEST_CUTOFF = 4.0  # Angstrom: no shell boundary below this is a cutoff candidate
SF_KIND_ORDER = ("S1", "S3", "S2", "S4")  # block order of the published specs


@dataclass
class Scored:
    """A candidate centre or vector with its separability (mean and worst pair of forms)."""

    candidate: Candidate
    mean: float
    worst: float
    worst_pair: tuple[str, str] | None


@dataclass
class CutoffTrial:
    rc: float
    n_pool: int
    macro_f1: float
    micro_f1: float
    log_loss: float


@dataclass
class DesignResult:
    """What `design_descriptors` chose, why, and what it expects of it."""

    spec: MoleculeSpec  # the designed spec (the input molecule with the chosen descriptors)
    source: MoleculeSpec  # the molecule as given
    forms: dict[str, FormSamples]
    centres: list[Scored]
    vectors: list[Scored]  # every candidate, best first
    joint: list[Scored]  # per vector after the first: the joint score of the one added
    equivalent: dict[int, set[int]]  # heavy atoms the bond graph cannot tell apart
    chosen_centre: Candidate
    chosen_vectors: list[Candidate]
    rdfs: dict[str, tuple[np.ndarray, np.ndarray]]
    cosines: dict[str, dict[str, np.ndarray]]  # vector label -> form -> cos(theta_IJ) samples
    cutoffs: list[CutoffTrial]
    rc: float
    probe_radius: float
    pool: list[SymmetryFunction]
    selection: Selection
    expected: dict[str, dict[str, float]]  # classifier -> {macro_f1, micro_f1}
    n_rows: dict[str, int]  # fitting / held-out molecules used
    settings: dict = field(default_factory=dict)
    centre_offsets: dict[str, float] = field(default_factory=dict)  # centre label -> mean distance from the molecule's centroid (A)

    @property
    def descriptor_set(self) -> DescriptorSet:
        return self.spec.descriptor_set()

    def spec_toml(self) -> str:
        from molenv.design.output import spec_toml

        return spec_toml(self.spec)

    def write(self, out: str | Path, *, command: str | None = None, log=print) -> dict[str, Path]:
        """Write DIR/spec.toml, DIR/report.md, DIR/design.json and the report's PNGs."""
        from molenv.design.output import write_design

        return write_design(self, Path(out), command=command, log=log)


# ----------------------------------------------------------------------------- the molecule


def resolve_molecule(molecule: str | Path | MoleculeSpec, name: str | None = None) -> MoleculeSpec:
    """A spec (shipped name, .toml path, MoleculeSpec) or a SMILES string (atoms and bonds
    from RDKit with explicit hydrogens, named element + index: C1, N2, ..., H5; the
    structures' and trajectories' molecules are matched onto it by their bond graphs)."""
    if isinstance(molecule, MoleculeSpec):
        return molecule
    text = str(molecule)
    try:
        return load_spec(text)
    except SpecError as err:
        if text.endswith(".toml") or "/" in text or Path(text).exists():
            raise DesignError(str(err)) from None
        spec_error = err
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise DesignError(f"{spec_error}; reading {text!r} as SMILES needs RDKit") from None
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(text)
    RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise DesignError(f"--molecule {text!r} is neither a spec (shipped: urea, nicotinamide; or a .toml file) nor a valid SMILES")
    mol = Chem.AddHs(mol)
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    names = [f"{e}{k + 1}" for k, e in enumerate(elements)]
    heavy = [k + 1 for k, e in enumerate(elements) if e != "H"]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    if len(heavy) < 2:
        raise DesignError(f"SMILES {text!r} has fewer than two heavy atoms: no vector to choose")
    placeholder = [SymmetryFunction("S1", None, (1.0, 1.0))]
    return MoleculeSpec(name=name or "molecule", atom_names=names, elements=elements, bonds=bonds, centre=heavy[0],
                        vectors=[(heavy[0], heavy[1])], rmin=1.0, rmax=2.0, functions=placeholder, smiles=text)


# ----------------------------------------------------------------------------- features


def _frames_key(forms: dict[str, FormSamples]) -> str:
    h = hashlib.sha256()
    for label, form in forms.items():
        h.update(label.encode())
        for f in form.frames:
            h.update(np.ascontiguousarray(f.positions).tobytes())
            h.update(np.ascontiguousarray(f.box).tobytes())
            h.update(np.ascontiguousarray(f.molecules).tobytes())
    return h.hexdigest()


def pool_features(forms: dict[str, FormSamples], descriptors: DescriptorSet, *, cache_dir: Path | None, frames_key: str,
                  progress: bool, desc: str) -> np.ndarray:
    """(molecules of every frame of every form, in order, n_functions) from
    `compute_descriptors`, read from / written to `cache_dir` when given (keyed by the
    frames and the descriptor set)."""
    from tqdm import tqdm

    key = hashlib.sha256((frames_key + json.dumps(descriptor_set_to_dict(descriptors), sort_keys=True)).encode()).hexdigest()[:24]
    path = cache_dir / f"features-{key}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        return np.load(path)
    frames = [f for form in forms.values() for f in form.frames]
    rows = [compute_descriptors(f, descriptors) for f in tqdm(frames, desc=desc, unit="frame", disable=not progress, leave=False)]
    x = np.concatenate(rows)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x)
        tmp.replace(path)
    return x


# ----------------------------------------------------------------------------- the design


def design_descriptors(
    molecule: str | Path | MoleculeSpec,
    structures=(),
    trajectories=(),
    *,
    name: str | None = None,
    n_vectors: int = 2,
    max_cutoff: float = 10.0,
    max_frames: int = 20,
    reader: dict | None = None,
    held_out_fraction: float = 0.3,
    noise: ThermalNoise = ThermalNoise(),
    symmetrise: dict[str, float] | None = None,
    warm_held_out: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
    expand_held_out: float | Mapping[str, float] | None = None,
    pool: PoolSettings = PoolSettings(),
    selection: SelectionSettings = SelectionSettings(),
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log=print,
) -> DesignResult:
    """Choose centre, vectors, cutoff and symmetry functions for `molecule` (module docstring).

    ``structures``: (label, crystal structure file) pairs, sampled by random rigid-molecule
    motion (`molenv.design.samples.from_structure`, a stand-in for MD); ``trajectories``:
    (label, trajectory, topology or None) triples; ``symmetrise``: label -> spglib tolerance
    (A) for approximate structures, e.g. short MD runs of each form and the
    melt; ``reader``: `molenv.trajectory.Trajectory` options for all of them, e.g. ``{"stop":
    32}`` to keep test frames out. Labels are the classes; a label may have several inputs. Strings ``LABEL=FILE`` and
    ``LABEL=TRAJECTORY:TOPOLOGY`` (the command-line spellings) are accepted too.
    ``warm_held_out``: (translation A, rotation degrees) of extra rigid-molecule motion for
    every form's held-out frames, or {label: (translation, rotation)}; ``expand_held_out``:
    a linear strain (0.016: 1.6 %) that stretches every form's periodic held-out frames
    (`molenv.augment.expanded`), or {label: strain}: the choices are scored on held-out
    samples as much hotter and as much expanded as the test crystals will be.
    """
    spec = resolve_molecule(molecule, name)
    rng = np.random.default_rng(seed)
    if not 0 < held_out_fraction < 1:
        raise DesignError(f"held_out_fraction must lie in (0, 1), got {held_out_fraction}")
    if n_vectors < 1:
        raise DesignError(f"n_vectors must be >= 1, got {n_vectors}")
    if max_frames < 2:
        raise DesignError(f"max_frames must be >= 2 (some fitting and some held-out frames), got {max_frames}")
    if selection.max_functions < 1:
        raise DesignError(f"max_functions must be >= 1, got {selection.max_functions}")
    structures = [parse_labelled(s, "--structure") if isinstance(s, str) else tuple(s) for s in structures]
    trajectories = [_trajectory_entry(t) for t in trajectories]
    if not structures and not trajectories:
        raise DesignError("no samples: give --structure LABEL=FILE (crystal structures) and/or --trajectory LABEL=TRAJECTORY:TOPOLOGY "
                          "(short MD runs of each form) for two or more labels")
    labels = list(dict.fromkeys([s[0] for s in structures] + [t[0] for t in trajectories]))
    if len(labels) < 2:
        raise DesignError(f"only one label ({labels[0]}): a design separates forms, give samples of two or more")
    warm_widths = _warm_widths(warm_held_out, labels) if warm_held_out is not None else {}
    strains = _per_label(expand_held_out, labels, "expand_held_out", float) if expand_held_out is not None else {}
    unknown = sorted(set(symmetrise or {}) - {s[0] for s in structures})
    if unknown:
        raise DesignError(f"--symmetrise names {', '.join(unknown)}, which no --structure has")
    for path in [s[1] for s in structures] + [p for t in trajectories for p in t[1:] if p is not None]:
        if not Path(path).is_file():
            raise DesignError(f"{path}: file not found")

    forms = {label: FormSamples(label) for label in labels}
    for label, traj, top in trajectories:
        log(f"reading {label}: {traj}")
        forms[label].extend(*from_trajectory(spec, traj, top, max_frames=max_frames, held_out_fraction=held_out_fraction,
                                                     reader=reader))
    for label, structure in structures:
        log(f"sampling {label}: {structure}")
        forms[label].extend(*from_structure(spec, structure, noise=noise, min_height=2 * max_cutoff + 1.0, held_out_fraction=held_out_fraction,
                                            rng=rng, symmetrise=(symmetrise or {}).get(label)), generated=True)

    for label, widths in warm_widths.items():
        # scored on frames hotter than the fitting ones, as the test crystals are
        form = forms[label]
        form.frames = [rigid_motion(f, *widths, rng) if h else f for f, h in zip(form.frames, form.held_out)]
    for label, strain in strains.items():
        # ... and expanded as a warmer crystal is: functions tuned to the exact distances of the
        # cold lattice lose their forms when the lattice stretches (docs/design.md)
        form = forms[label]
        form.frames = [expanded(f, strain) if h and f.periodic else f for f, h in zip(form.frames, form.held_out)]
    heights = min(float(perpendicular_heights(f.box_matrix()).min()) for form in forms.values() for f in form.frames)
    probe = math.floor(min(max_cutoff, heights / 2 - 0.05) * 10) / 10
    if probe < LOWEST_CUTOFF:
        raise DesignError(f"the smallest cell is {heights:.1f} A across: cutoffs above {LOWEST_CUTOFF:g} A need cells over {2 * LOWEST_CUTOFF:g} A "
                          "(use larger supercells)")
    fitting = {label: [f for f, h in zip(form.frames, form.held_out) if not h] for label, form in forms.items()}

    # 1. centre
    log(f"scoring {len(geometry.candidate_centres(spec))} candidate centres (distances up to {probe:g} A)")
    centres = []
    for c in geometry.candidate_centres(spec):
        d = {label: geometry.centre_distances(frames, c, probe) for label, frames in fitting.items()}
        centres.append(Scored(c, *geometry.separability(d, geometry.distance_edges(probe))))
    centres.sort(key=lambda s: -s.mean)
    offsets = _centroid_offsets([s.candidate for s in centres], forms)
    centre = _central([s for s in centres if s.mean >= CENTRE_TOLERANCE * centres[0].mean], offsets)
    rdfs = {label: geometry.rdf(geometry.centre_distances(frames, centre, probe), frames, probe) for label, frames in fitting.items()}

    # 2. vectors
    candidates = geometry.candidate_vectors(spec, next(iter(fitting.values()))[0])
    log(f"scoring {len(candidates)} candidate vectors (pairs within {probe:g} A)")
    vectors, cosines = [], {}
    pairs = {label: [centre_pairs(f, centre.centre, probe) for f in frames] for label, frames in fitting.items()}
    for v in candidates:
        cos = {label: geometry.pair_cosines(frames, centre, v, probe, pairs[label]) for label, frames in fitting.items()}
        vectors.append(Scored(v, *geometry.separability(cos, geometry.cosine_edges(v.value_range))))
        cosines[v.label] = cos
    vectors.sort(key=lambda s: -s.mean)
    chosen, joint = _vectors(vectors, n_vectors, next(iter(fitting.values()))[0], cosines)
    cosines = {v.label: cosines[v.label] for v in chosen}
    sign_invariant = tuple(k for k, v in enumerate(chosen, 1) if v.sign_invariant)
    designed = MoleculeSpec(name=spec.name, atom_names=spec.atom_names, elements=spec.elements, bonds=spec.bonds, centre=centre.centre,
                            vectors=[v.atoms for v in chosen], rmin=0.0, rmax=1.0, functions=[], smiles=spec.smiles, path=None,
                            charge_sets=spec.charge_sets, lennard_jones_sets=spec.lennard_jones_sets, sign_invariant=sign_invariant)

    # 3. cutoff
    r, g = _pooled_rdf(rdfs)
    closest = min(float(geometry.centre_distances(frames, centre, probe).min()) for frames in fitting.values())
    cuts = [rc for rc in geometry.cutoff_candidates(r, g, max(LOWEST_CUTOFF, closest + 1.0), probe) if rc - SWITCH_WIDTH > closest]
    y, held = _rows(forms)
    fit_rows = np.flatnonzero(~held)[stratified_subsample(y[~held], selection.max_samples, rng)]
    held_rows = np.flatnonzero(held)[stratified_subsample(y[held], selection.max_samples, rng)]
    key = _frames_key(forms)
    cache = Path(cache_dir) if cache_dir is not None else None
    log(f"cutoff candidates (RDF shell boundaries and the largest usable): {', '.join(f'{c:g}' for c in cuts)} A")
    trials, features = [], {}
    for rc in cuts:
        functions = candidate_pool(pool, rc, closest, len(chosen), sign_invariant)
        d = DescriptorSet(spec.atoms_per_molecule, centre.centre, [v.atoms for v in chosen], rc - SWITCH_WIDTH, rc, functions, sign_invariant)
        x = pool_features(forms, d, cache_dir=cache, frames_key=key, progress=progress, desc=f"pool at rc {rc:g}")
        xf, xh, varies = standardise(x[fit_rows], x[held_rows])
        macro, micro, loss = Discriminant(xf, y[fit_rows], xh, y[held_rows], selection.shrinkage).score(np.flatnonzero(varies))
        trials.append(CutoffTrial(rc, len(functions), macro, micro, loss))
        features[rc] = (functions, x)
        log(f"  rc {rc:g} A: pool of {len(functions)}, held-out macro F1 {macro:.4f}, micro F1 {micro:.4f}, log loss {loss_text(loss)}")
    best_f1, best_loss = max(t.macro_f1 for t in trials), min(t.log_loss for t in trials)
    rc = min(t.rc for t in trials if t.macro_f1 >= best_f1 - CUTOFF_F1_TOLERANCE and t.log_loss <= CUTOFF_LOSS_FACTOR * best_loss + 1e-12)

    # 4. functions
    functions, x = features[rc]
    log(f"forward selection from {len(functions)} functions at rc {rc:g} A ({len(fit_rows)} fitting, {len(held_rows)} held-out molecules)")
    picked = forward_selection(functions, x[fit_rows], y[fit_rows], x[held_rows], y[held_rows], selection, progress=progress, log=log)
    order = sorted(range(len(picked.functions)), key=lambda k: _block(picked.functions[k]))
    designed.functions = [picked.functions[k] for k in order]
    designed.rmin, designed.rmax = rc - SWITCH_WIDTH, rc
    designed.descriptor_set().validate()

    # 5. expected accuracy
    columns = [functions.index(f) for f in picked.functions]
    expected = _expected(x[fit_rows][:, columns], y[fit_rows], x[held_rows][:, columns], y[held_rows], seed, selection.c, selection.shrinkage)
    settings = {"n_vectors": n_vectors, "max_cutoff": max_cutoff, "max_frames": max_frames, "reader": reader, "held_out_fraction": held_out_fraction,
                "noise": vars(noise) if any(f.generated for f in forms.values()) else None,
                "warm_held_out": dict(warm_held_out) if isinstance(warm_held_out, Mapping) else warm_held_out,
                "expand_held_out": dict(expand_held_out) if isinstance(expand_held_out, Mapping) else expand_held_out, "symmetrise": symmetrise, "pool": vars(pool),
                "selection": vars(selection), "seed": seed}
    return DesignResult(spec=designed, source=spec, forms=forms, centres=centres, vectors=vectors, joint=joint,
                        equivalent=geometry.equivalent_atoms(spec), chosen_centre=centre, chosen_vectors=chosen,
                        rdfs=rdfs, cosines=cosines, cutoffs=trials, rc=rc, probe_radius=probe, pool=functions, selection=picked,
                        expected=expected, n_rows={"fitting": len(fit_rows), "held_out": len(held_rows)}, settings=settings,
                        centre_offsets=offsets)


def _warm_widths(warm_held_out, labels: list[str]) -> dict[str, tuple[float, float]]:
    """``warm_held_out`` as {label: (translation A, rotation degrees)}: one pair is every
    form's; a mapping warms only the forms it names (e.g. each crystal by its own harmonic
    widths, `molenv.augment.warming`, and the melt not at all)."""
    return _per_label(warm_held_out, labels, "warm_held_out", lambda widths: tuple(float(w) for w in widths))


def _per_label(value, labels: list[str], what: str, convert) -> dict:
    """`value` as {label: converted value}: a single value is every label's, a mapping names
    the labels it applies to (only labels that have samples)."""
    if not isinstance(value, Mapping):
        return dict.fromkeys(labels, convert(value))
    unknown = sorted(set(value) - set(labels))
    if unknown:
        raise DesignError(f"{what} names {', '.join(unknown)}, which no sample has (labels: {', '.join(labels)})")
    return {label: convert(v) for label, v in value.items()}


def _trajectory_entry(t) -> tuple[str, str, str | None]:
    if not isinstance(t, str):
        label, traj, *top = t
        return label, str(traj), (str(top[0]) if top and top[0] is not None else None)
    label, value = parse_labelled(t, "--trajectory")
    traj, sep, top = value.rpartition(":") if ":" in value else (value, "", "")
    return label, traj, top or None


def _block(sf: SymmetryFunction) -> tuple[int, int]:
    return SF_KIND_ORDER.index(sf.kind), sf.vector or 0


def _rows(forms: dict[str, FormSamples]) -> tuple[np.ndarray, np.ndarray]:
    """Per molecule of every frame (the order of `pool_features`): form index, held out."""
    y, held = [], []
    for k, form in enumerate(forms.values()):
        for f, h in zip(form.frames, form.held_out):
            y.append(np.full(f.n_molecules, k))
            held.append(np.full(f.n_molecules, h))
    return np.concatenate(y), np.concatenate(held)


def _whole_molecules(forms: dict[str, FormSamples]) -> np.ndarray:
    f = next(iter(forms.values())).frames[0]
    return f.molecule_positions(1)


def _centroid_offsets(candidates: list[Candidate], forms) -> dict[str, float]:
    """Centre label -> mean distance (A) of that point from the molecule's centroid over a frame's molecules."""
    mol = _whole_molecules(forms)
    centroid = mol.mean(axis=1)
    return {c.label: float(np.linalg.norm(mol[:, np.asarray(c.atoms) - 1].mean(axis=1) - centroid, axis=1).mean()) for c in candidates}


def _central(shortlist: list[Scored], offsets: dict[str, float]) -> Candidate:
    """The shortlisted centre closest to the molecule's centroid; an atom rather than a
    centroid within ``CENTRAL_TOLERANCE`` of that distance (the simpler geometry: a version-1
    model file, PLUMED's centre force on one atom)."""
    distance = {s.candidate: offsets[s.candidate.label] for s in shortlist}
    closest = min(distance.values())
    atoms = [s for s in shortlist if s.candidate.kind == "atom" and distance[s.candidate] <= closest + CENTRAL_TOLERANCE]
    return min(atoms or shortlist, key=lambda s: (round(distance[s.candidate], 3), -s.mean)).candidate


def _vectors(scored: list[Scored], n: int, frame, cosines: dict[str, dict[str, np.ndarray]]) -> tuple[list[Candidate], list[Scored]]:
    """The best single vector, then each time the candidate whose cosines together with those
    of the vectors chosen so far separate the forms best (`geometry.joint_separability`),
    skipping candidates nearly parallel (in the molecules of `frame`) to a chosen one. Returns
    the vectors and, per step after the first, the joint score of the one added."""

    def direction(c: Candidate) -> np.ndarray:
        v = c.vectors(frame)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    chosen, joint = [scored[0].candidate], []
    while len(chosen) < n:
        best = None
        for s in scored:
            c = s.candidate
            if c in chosen or any(np.abs(np.einsum("ij,ij->i", direction(c), direction(w))).mean() > PARALLEL_LIMIT for w in chosen):
                continue
            together = {form: np.stack([cosines[v.label][form] for v in chosen + [c]], axis=1) for form in cosines[c.label]}
            score = Scored(c, *geometry.joint_separability(together, [v.value_range for v in chosen + [c]]))
            if best is None or score.mean > best.mean:
                best = score
        if best is None:
            raise DesignError(f"only {len(chosen)} mutually non-parallel vectors among the candidates; ask for fewer (--vectors {len(chosen)})")
        chosen.append(best.candidate)
        joint.append(best)
    return chosen, joint


def _pooled_rdf(rdfs: dict) -> tuple[np.ndarray, np.ndarray]:
    """The mean RDF of the crystal forms (all forms where none is crystalline by name)."""
    crystals = [k for k in rdfs if k.lower() != "melt"] or list(rdfs)
    r = rdfs[crystals[0]][0]
    return r, np.mean([rdfs[k][1] for k in crystals], axis=0)


def _expected(x_fit, y_fit, x_held, y_held, seed: int, c: float, shrinkage: float) -> dict[str, dict[str, float]]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score
    from sklearn.neural_network import MLPClassifier

    xf, xh, varies = standardise(x_fit, x_held)
    classes = np.unique(np.concatenate([y_fit, y_held]))
    macro, micro, _ = fit_score(xf[:, varies], y_fit, xh[:, varies], y_held, classes, c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((25, 25), activation="logistic", max_iter=400, random_state=seed).fit(xf, y_fit)
    pred = mlp.predict(xh)
    lda = Discriminant(xf, y_fit, xh, y_held, shrinkage).score(np.flatnonzero(varies))
    return {"discriminant": {"macro_f1": lda[0], "micro_f1": lda[1]}, "logistic_regression": {"macro_f1": macro, "micro_f1": micro},
            "mlp_25_25": {"macro_f1": float(f1_score(y_held, pred, labels=classes, average="macro", zero_division=0)),
                          "micro_f1": float(np.mean(pred == y_held))}}
