"""Import models trained with the original authors' SF-classifier code into molenv models.

The original code (Kuroshima et al., JCTC 2024) stores a trained SF-MLP in two files:

- an SF input file (``sf_input_molstruc.dat``): global keys such as ``cutoffmin``/``cutoffmax``
  and blocks ``number_of_para n``, ``point true|false``, ``vec_id a b`` (vectors named by the
  original code's atom types, v = r(b) - r(a)), ``G2G3 G2|G3`` and the parameter lines
  ``Rs``/``eta``/``kappa``. A line is a key in its first 16 characters and values after it;
  ``//`` starts a comment, ``#`` a comment line. Blocks map onto molenv symmetry functions:
  ``point true`` + G2 -> S1 (Rs, eta); ``point false`` + G2 -> S3 (cos θ_s given as Rs, eta);
  ``point true`` + G3 -> S2 (kappa); ``point false`` + G3 -> S4 (kappa). Feature order is
  block order; the i-th distinct ``vec_id`` pair is molenv vector i.
- a weight file (``sf_mlp_weights_molstruc.txt``), whitespace separated: hidden-layer count,
  layer sizes, an optional output activation (0 sigmoid, 1 softmax; absent in older files,
  which mean sigmoid), ``mean stretch`` per input then ``0 1`` per output, the iteration
  count, then per layer (n_l + 1) rows of n_(l+1) numbers, row 0 the bias and row j the
  weights from input j. Hidden units are sigmoids.

Molecule geometry (atoms per molecule, centre and vector atoms) is not in those files in a
usable form (they name the original code's atom types), so it is given by the caller in
molenv's 1-based molecule atom order. `import_reference` builds a `Model`;
`shipped_reference_model` does so for the two references in ../shared/reference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.constants import file_sha256
from molenv.descriptors import DescriptorSet, SymmetryFunction
from molenv.frames import Centre
from molenv.modelfile import Model, ModelFileError, Network

__all__ = [
    "ReferenceFormatError",
    "SFInput",
    "ReferenceWeights",
    "read_sf_input",
    "read_reference_weights",
    "import_reference",
    "REFERENCE_CLASSES",
    "REFERENCE_SF_INPUT",
    "REFERENCE_WEIGHTS",
    "shipped_reference_model",
]


class ReferenceFormatError(ValueError):
    """A reference SF input or weight file that cannot be imported; names the file and problem."""


# ----------------------------------------------------------------------------- SF input file

KEY_WIDTH = 16  # "Please do not write in first 16 spaces": keys live in columns 1-16
GLOBAL_KEYS = {
    "num_sf", "num_pvsf_type", "COvectype", "NNvectype", "triclinic", "center atom", "atm in molec",
    "cutoffmin", "cutoffmax", "symf_calc_or_NN", "NNrdf", "fullNeigh", "rdiff",
}
BLOCK_KEYS = {"number_of_para", "point", "vec_id", "G2G3", "Rs", "eta", "kappa"}
# (point, G2G3) -> molenv kind and the SF-file keys of its parameters, in molenv order
BLOCK_KINDS = {
    (True, "G2"): ("S1", ("Rs", "eta")),
    (False, "G2"): ("S3", ("Rs", "eta")),
    (True, "G3"): ("S2", ("kappa",)),
    (False, "G3"): ("S4", ("kappa",)),
}


@dataclass
class SFInput:
    """The content of a reference SF input file that molenv uses."""

    rmin: float
    rmax: float
    vec_ids: list[tuple[int, int]]  # distinct vec_id pairs in order of first appearance
    functions: list[SymmetryFunction]  # vector = 1-based index into vec_ids
    settings: dict[str, str]  # the global keys as written (centre atom type, ...)


def _split_line(line: str) -> tuple[str, list[str]] | None:
    text = line.split("//", 1)[0].rstrip()
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    key = text[:KEY_WIDTH].strip()
    if key in GLOBAL_KEYS or key in BLOCK_KEYS:
        return key, text[KEY_WIDTH:].split()
    # tolerate keys written past column 16 (e.g. with a tab): the longest known key that starts the line
    stripped = text.strip()
    for known in sorted(GLOBAL_KEYS | BLOCK_KEYS, key=len, reverse=True):
        if re.match(re.escape(known) + r"(\s|$)", stripped):
            return known, stripped[len(known):].split()
    return stripped.split()[0], stripped.split()[1:]


def read_sf_input(path: str | Path) -> SFInput:
    """Parse a reference SF input file; ReferenceFormatError names the file, line and problem."""
    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "SF input file"):
        raise ReferenceFormatError(problem)
    settings: dict[str, str] = {}
    blocks: list[tuple[int, dict[str, tuple[int, list[str]]]]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parsed = _split_line(line)
        if parsed is None:
            continue
        key, values = parsed
        if key == "number_of_para":
            blocks.append((lineno, {}))
        if key in BLOCK_KEYS:
            if not blocks:
                raise ReferenceFormatError(f"{path}:{lineno}: '{key}' before the first 'number_of_para' block")
            block = blocks[-1][1]
            if key in block:
                raise ReferenceFormatError(f"{path}:{lineno}: '{key}' given twice in the block starting at line {blocks[-1][0]}")
            block[key] = (lineno, values)
        elif key in GLOBAL_KEYS:
            settings[key] = " ".join(values)
        else:
            raise ReferenceFormatError(f"{path}:{lineno}: unknown key '{key}'")

    def number(text: str, lineno: int, what: str, kind=float):
        try:
            return kind(text)
        except ValueError:
            raise ReferenceFormatError(f"{path}:{lineno}: {what}: '{text}' is not {'an integer' if kind is int else 'a number'}") from None

    for key in ("cutoffmin", "cutoffmax"):
        if not settings.get(key):
            raise ReferenceFormatError(f"{path}: missing '{key}'")
    rmin = number(settings["cutoffmin"].split()[0], 0, "cutoffmin")
    rmax = number(settings["cutoffmax"].split()[0], 0, "cutoffmax")
    if not 0 <= rmin < rmax:
        raise ReferenceFormatError(f"{path}: cutoffmin {rmin} and cutoffmax {rmax} need 0 <= cutoffmin < cutoffmax")
    if not blocks:
        raise ReferenceFormatError(f"{path}: no symmetry-function blocks ('number_of_para ...')")

    vec_ids: list[tuple[int, int]] = []
    functions: list[SymmetryFunction] = []
    for start, block in blocks:
        def need(key: str) -> tuple[int, list[str]]:
            if key not in block:
                raise ReferenceFormatError(f"{path}:{start}: the block starting here lacks '{key}'")
            return block[key]

        lineno, values = need("number_of_para")
        if len(values) != 1:
            raise ReferenceFormatError(f"{path}:{lineno}: number_of_para takes one integer")
        n = number(values[0], lineno, "number_of_para", int)
        lineno, values = need("point")
        if len(values) != 1 or values[0].lower() not in ("true", "false"):
            raise ReferenceFormatError(f"{path}:{lineno}: point must be 'true' or 'false', got {' '.join(values)!r}")
        point = values[0].lower() == "true"
        lineno, values = need("G2G3")
        if len(values) != 1 or (point, values[0]) not in BLOCK_KINDS:
            raise ReferenceFormatError(f"{path}:{lineno}: unknown block type G2G3 {' '.join(values)!r} (expected G2 or G3)")
        kind, param_keys = BLOCK_KINDS[point, values[0]]
        vector = None
        if point:
            if "vec_id" in block:
                raise ReferenceFormatError(f"{path}:{block['vec_id'][0]}: a 'point true' block takes no vec_id")
        else:
            lineno, values = need("vec_id")
            if len(values) != 2:
                raise ReferenceFormatError(f"{path}:{lineno}: vec_id takes two atom types, got {len(values)} values")
            pair = (number(values[0], lineno, "vec_id", int), number(values[1], lineno, "vec_id", int))
            if pair not in vec_ids:
                vec_ids.append(pair)
            vector = vec_ids.index(pair) + 1
        extra = set(block) - {"number_of_para", "point", "vec_id", "G2G3", *param_keys}
        if extra:
            key = sorted(extra)[0]
            raise ReferenceFormatError(f"{path}:{block[key][0]}: '{key}' does not belong in a {kind} block (point {str(point).lower()}, G2G3 {need('G2G3')[1][0]})")
        columns = []
        for key in param_keys:
            lineno, values = need(key)
            if len(values) != n:
                raise ReferenceFormatError(f"{path}:{lineno}: '{key}' has {len(values)} values, number_of_para says {n}")
            columns.append([number(v, lineno, key) for v in values])
        functions += [SymmetryFunction(kind, vector, tuple(p)) for p in zip(*columns)]

    if "num_sf" in settings:
        announced = number(settings["num_sf"].split()[0], 0, "num_sf", int)
        if announced != len(functions):
            raise ReferenceFormatError(f"{path}: num_sf is {announced} but the blocks define {len(functions)} symmetry functions")
    if "num_pvsf_type" in settings:
        announced = number(settings["num_pvsf_type"].split()[0], 0, "num_pvsf_type", int)
        if announced != len(vec_ids):
            raise ReferenceFormatError(f"{path}: num_pvsf_type is {announced} but the blocks use {len(vec_ids)} distinct vec_id pairs {vec_ids}")
    return SFInput(rmin, rmax, vec_ids, functions, settings)


# ----------------------------------------------------------------------------- weight file

OUTPUT_ACTIVATION_CODES = {0: "sigmoid", 1: "softmax"}


@dataclass
class ReferenceWeights:
    network: Network
    iterations: int
    activation_line: bool  # whether the file has the output-activation line


def read_reference_weights(path: str | Path) -> ReferenceWeights:
    """Parse a reference weight file; ReferenceFormatError names the file and problem.

    Whether the output-activation line is present is decided from the total number of
    values, which the layer sizes fix exactly (so the line layout does not matter).
    """
    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "weight file"):
        raise ReferenceFormatError(problem)
    tokens = path.read_text().split()
    pos = 0

    def take(n: int, what: str) -> list[str]:
        nonlocal pos
        if pos + n > len(tokens):
            raise ReferenceFormatError(f"{path}: file ends inside the {what} (value {len(tokens) + 1} of the file)")
        out = tokens[pos:pos + n]
        pos += n
        return out

    def integer(text: str, what: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ReferenceFormatError(f"{path}: {what}: '{text}' is not an integer") from None

    def numbers(values: list[str], what: str) -> np.ndarray:
        try:
            out = np.array([float(v) for v in values])
        except ValueError as err:
            raise ReferenceFormatError(f"{path}: {what}: {err}") from None
        if not np.all(np.isfinite(out)):
            raise ReferenceFormatError(f"{path}: {what} holds non-finite numbers")
        return out

    n_hidden = integer(take(1, "hidden-layer count")[0], "hidden-layer count")
    if not 0 <= n_hidden <= 100:
        raise ReferenceFormatError(f"{path}: hidden-layer count {n_hidden} is not plausible")
    sizes = [integer(t, "layer sizes") for t in take(n_hidden + 2, "layer sizes")]
    if min(sizes) < 1:
        raise ReferenceFormatError(f"{path}: layer sizes {sizes} must be positive")
    n_in, n_out = sizes[0], sizes[-1]
    n_weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    body = 2 * (n_in + n_out) + 1 + n_weights  # scaling, iterations, layers
    remaining = len(tokens) - pos
    if remaining == body + 1:
        code = integer(take(1, "output activation")[0], "output activation")
        if code not in OUTPUT_ACTIVATION_CODES:
            raise ReferenceFormatError(f"{path}: output activation {code} is unknown (0 sigmoid, 1 softmax)")
        output, activation_line = OUTPUT_ACTIVATION_CODES[code], True
    elif remaining == body:
        output, activation_line = "sigmoid", False
    else:
        raise ReferenceFormatError(
            f"{path}: layer sizes {sizes} need {body} values after them ({body + 1} with the output-activation "
            f"line), the file has {remaining}"
        )
    scaling = numbers(take(2 * (n_in + n_out), "scaling line"), "scaling line").reshape(-1, 2)
    mean, stretch = scaling[:n_in, 0].copy(), scaling[:n_in, 1].copy()
    if not np.array_equal(scaling[n_in:], np.tile([0.0, 1.0], (n_out, 1))):
        raise ReferenceFormatError(f"{path}: output scaling pairs must all be '0 1' (an unscaled output), got {scaling[n_in:].tolist()}")
    if np.any(stretch == 0):
        raise ReferenceFormatError(f"{path}: input scaling stretch of input {int(np.flatnonzero(stretch == 0)[0]) + 1} is zero")
    iterations = integer(take(1, "iteration count")[0], "iteration count")
    weights, biases = [], []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
        rows = numbers(take((a + 1) * b, f"layer {k}"), f"layer {k}").reshape(a + 1, b)
        biases.append(rows[0].copy())
        weights.append(rows[1:].T.copy())  # (n_out, n_in)
    hidden = "sigmoid"
    network = Network(mean, stretch, weights, biases, hidden, output)
    return ReferenceWeights(network, iterations, activation_line)


# ----------------------------------------------------------------------------- import


def import_reference(
    weights: str | Path,
    sf_input: str | Path,
    *,
    atoms_per_molecule: int,
    centre_atom: Centre,
    vectors: list[tuple[int, int]],
    classes: list[str],
    name: str | None = None,
) -> Model:
    """A molenv Model from a reference weight file and SF input file.

    `centre_atom` and `vectors` are 1-based positions in molenv's molecule atom order (the
    order of the molecule spec); vector i replaces the i-th distinct ``vec_id`` pair of the
    SF file. Raises ReferenceFormatError with the file and the problem.
    """
    weights, sf_input = Path(weights), Path(sf_input)
    sf = read_sf_input(sf_input)
    ref = read_reference_weights(weights)
    vectors = [tuple(int(x) for x in v) for v in vectors]
    if len(vectors) != len(sf.vec_ids):
        raise ReferenceFormatError(
            f"{sf_input}: the SF file uses {len(sf.vec_ids)} vectors (vec_id pairs {sf.vec_ids}), "
            f"{len(vectors)} were given ({vectors})"
        )
    descriptors = DescriptorSet(atoms_per_molecule, centre_atom, vectors, sf.rmin, sf.rmax, sf.functions)
    n_in, n_out = ref.network.sizes[0], ref.network.sizes[-1]
    if n_in != descriptors.n_features:
        raise ReferenceFormatError(f"{weights}: the network has {n_in} inputs, {sf_input} defines {descriptors.n_features} symmetry functions")
    if n_out != len(classes):
        raise ReferenceFormatError(f"{weights}: the network has {n_out} outputs, {len(classes)} class names were given ({', '.join(classes)})")
    meta = {
        "source": "original SF-classifier code (Kuroshima et al., JCTC 2024)",
        "imported_by": "molenv import-reference",
        "reference_weights": weights.name,
        "reference_weights_sha256": file_sha256(weights),
        "reference_sf_input": sf_input.name,
        "reference_sf_input_sha256": file_sha256(sf_input),
        "reference_iterations": str(ref.iterations),
        "reference_vec_ids": " ".join(f"{a}:{b}" for a, b in sf.vec_ids),
    }
    for key in ("center atom", "atm in molec"):
        if key in sf.settings:
            meta["reference_" + key.replace(" ", "_")] = sf.settings[key]
    model = Model(name or f"reference SF-MLP imported from {weights.name}", list(classes), descriptors, ref.network, meta)
    try:
        model.validate()
    except ModelFileError as err:
        raise ReferenceFormatError(f"{weights} + {sf_input}: {err}") from None
    return model


# The file names of the authors' SF-MLP in their folder (../shared/reference/<molecule>).
REFERENCE_WEIGHTS = "sf_mlp_weights_molstruc.txt"
REFERENCE_SF_INPUT = "sf_input_molstruc.dat"

# Class order of the shipped reference models (METHOD.md §3).
REFERENCE_CLASSES = {
    "urea": ["I", "IV", "Melt", "A", "B", "C", "III"],
    "nicotinamide": ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "Melt"],
}


def shipped_reference_model(molecule: str, reference_dir: str | Path) -> Model:
    """The imported reference model of `molecule` ("urea" or "nicotinamide") from
    ``reference_dir/<molecule>/``, with the geometry of molenv's shipped spec (urea: centre C,
    vectors C->O 1:2 and N1->N2 3:6; nicotinamide: centre C3 1, vectors C6->C3 4:1 and
    C7->N7 7:9) and the class order of METHOD.md §3."""
    from molenv.spec import load_spec

    if molecule not in REFERENCE_CLASSES:
        raise ReferenceFormatError(f"no shipped reference model for {molecule!r} (have {', '.join(REFERENCE_CLASSES)})")
    spec = load_spec(molecule)
    folder = Path(reference_dir) / molecule
    return import_reference(
        folder / REFERENCE_WEIGHTS,
        folder / REFERENCE_SF_INPUT,
        atoms_per_molecule=spec.atoms_per_molecule,
        centre_atom=spec.centre,
        vectors=list(spec.vectors),
        classes=REFERENCE_CLASSES[molecule],
        name=f"{molecule} reference SF-MLP (Kuroshima et al. 2024)",
    )


def agreement(model: Model, frames, label: str, *, complete_environments: bool = False) -> dict:
    """How a (reference) model classifies ``frames`` of a system whose molecules are all of
    class ``label``: the fraction of molecules (over all frames) whose most probable class is
    ``label``, the mean probability of ``label``, and the fractions of every class predicted.
    The cross-check of our MD data against the original authors' models (data/README.md).
    ``complete_environments``: only the molecules whose whole descriptor sphere lies inside
    the system (`molenv.topology.complete_environment`: the inner core of a cluster, every
    molecule of a periodic frame), the ones a model trained on periodic bulk can judge."""
    from molenv.descriptors import compute_descriptors
    from molenv.topology import complete_environment

    if label not in model.classes:
        raise ReferenceFormatError(f"class {label!r} is not among the model's classes ({', '.join(model.classes)})")
    k = model.classes.index(label)
    predicted, p_label, n_frames = [], [], 0
    for frame in frames:
        p = model.predict_proba(compute_descriptors(frame, model.descriptors))
        if complete_environments:
            p = p[complete_environment(frame, model.descriptors.centre_atom, model.descriptors.rmax)]
        predicted.append(p.argmax(axis=1))
        p_label.append(p[:, k])
        n_frames += 1
    predicted = np.concatenate(predicted)
    if not len(predicted):
        raise ReferenceFormatError("no molecule to judge: no frame has a molecule with a complete environment (a cluster smaller than "
                                   f"twice the {model.descriptors.rmax:g} A cutoff?)")
    counts = np.bincount(predicted, minlength=len(model.classes)) / len(predicted)
    return {"label": label, "fraction": float(counts[k]), "mean_probability": float(np.mean(np.concatenate(p_label))),
            "predicted": {c: round(float(f), 4) for c, f in zip(model.classes, counts) if f > 0}, "n_molecules": len(predicted),
            "n_frames": n_frames}
