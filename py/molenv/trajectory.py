"""Read trajectories through MDAnalysis into `MolecularFrame`s of one kind of molecule.

Supported (anything MDAnalysis reads works; these are the ones molenv is tested with):
LAMMPS data files (``.data``/``.lmp``, atom_style full) and dump files (``.dump``,
``.lammpstrj``; wrapped or scaled coordinates, orthogonal or triclinic boxes), GROMACS
``.gro``/``.xtc``/``.trr``, PDB, DCD (with a topology) and XYZ (box given with
``dimensions=``; without a box the system is a non-periodic cluster).

Reading a system means answering three questions, each checked against the molecule spec
with an error that names the file and the problem:

1. **Which atoms make up which molecule.** ``molecules="residues"``: one molecule per
   residue / LAMMPS molecule id; ``"blocks"``: contiguous blocks of atoms_per_molecule
   atoms; ``"auto"`` (default): residues if every residue has the spec's atom count, blocks
   if the file has no residue information. ``selection=`` (MDAnalysis selection syntax)
   picks the atoms first, e.g. to leave out solvent.
2. **Which element each atom is.** From ``type_elements`` (LAMMPS numeric types: a dict,
   ``"1:H,2:O,3:C,4:N"`` or a LAMMPS data file whose Masses give the elements, see
   `type_elements_from_data`), else the file's element symbols, else masses read from the
   file (LAMMPS data), else atom names.
3. **The order of a molecule's atoms**, which must be the spec's order (the centre and the
   vectors are atom positions). ``atom_order="name"``: by atom name (the names, after the
   optional ``name_map`` {file name: spec name}, must be the spec's names); ``"position"``:
   as stored in the file (LAMMPS: by atom id); ``"bonds"``: by matching the bond graph
   (from the topology, or guessed from distances) and elements onto the spec's, atoms named
   in ``name_map`` pinned to their spec atoms (for files without names the LAMMPS types
   serve as names: e.g. ``{"4": "N1", "5": "N2"}`` fixes which urea N is N1);
   ``"auto"`` (default): by name if the names are the spec's, else by position if the
   elements then match the spec, else by bonds.

Besides files, `Trajectory` reads what is already in memory: an MDAnalysis ``Universe`` or
``AtomGroup`` (the same three questions answered from its attributes; a selection, the atoms
of the group) and ASE ``Atoms`` or a list of them (frames of one system), converted by
`universe_from_ase` into a Universe without residues (so molecules are contiguous blocks).

MDAnalysis holds coordinates in float32; frames carry them as float64 (so descriptors of a
frame are reproducible to float64 precision, but a file read with another float64 reader
differs by float32 rounding, ~1e-7 relative).
"""
from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from molenv.frames import FrameError, MolecularFrame, check_finite_positions, minimum_image
from molenv.spec import MoleculeSpec, load_spec

__all__ = [
    "TrajectoryError",
    "open_universe",
    "Trajectory",
    "universe_from_ase",
    "read_timestep",
    "check_positions",
    "check_complete",
    "read_frames",
    "read_frame",
    "parse_type_elements",
    "type_elements_from_data",
    "element_from_mass",
    "sniff_format",
    "dump_columns",
    "symbol_tables",
    "type_key",
]

# file extensions MDAnalysis does not map to the format molenv means
EXTENSION_FORMATS = {"dump": "LAMMPSDUMP", "lammpstrj": "LAMMPSDUMP", "lammpsdump": "LAMMPSDUMP", "data": "DATA", "lmp": "DATA"}
COORDINATE_ONLY = {"XTC", "TRR", "DCD", "NC", "NCDF", "TNG", "H5MD", "TRJ", "MDCRD", "CRDBOX"}
SUPPORTED = "LAMMPS data (.data) and dump (.dump, .lammpstrj), GROMACS .gro/.xtc/.trr, PDB, DCD (with a topology), XYZ"



def open_universe(path: str | Path, topology: str | Path | None = None, *, format: str | None = None,
                  topology_format: str | None = None, where: str | None = None):
    """The one opener of trajectory files: an MDAnalysis Universe of `path` (with `topology`,
    default the file itself), all atoms in file order, with molenv's format detection (LAMMPS
    dump/data by extension or content; the reference dumps' numeric 'element' column) and
    TrajectoryError messages that name the file. Returns (universe, topology format)."""
    import MDAnalysis as mda

    from molenv.paths import file_problem

    path = Path(path)
    top = Path(topology) if topology is not None else path
    where = where or (str(path) if top == path else f"{top} + {path}")
    for p in {path, top}:
        if problem := file_problem(p):
            raise TrajectoryError(problem)
    format = format or sniff_format(path)
    if top == path:
        kind = (format or path.suffix.lstrip(".")).upper()
        if kind in COORDINATE_ONLY:
            raise TrajectoryError(f"{path}: a {kind} file holds coordinates only; give topology= (e.g. a GRO, PDB, TPR, PSF or "
                                  "LAMMPS data file with the same atoms)")
    topology_format = topology_format or (format if top == path else sniff_format(top))
    kwargs = {k: v for k, v in (("format", format), ("topology_format", topology_format)) if v}
    if topology_format == "LAMMPSDUMP" and format == "LAMMPSDUMP":
        columns = dump_columns(top)
        if "type" not in columns and "element" in columns:  # the reference dumps' numeric types
            kwargs["additional_columns"] = ["element"]
    files = [top] if top == path else [top, path]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # guessed masses, unknown 'element' numbers: handled by the caller
            universe = mda.Universe(*map(str, files), **kwargs)
    except (ValueError, TypeError, OSError, EOFError, IndexError, KeyError, NotImplementedError) as err:
        # EOFError: a truncated compressed file (.gz, .bz2), e.g. one still being written
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrajectoryError(
            f"{where}: cannot read it ({first}). Supported: {SUPPORTED}; give format=/topology_format= "
            "where the extension does not tell, and topology= for coordinate-only files (XTC, TRR, DCD)"
        ) from None
    if len(universe.trajectory) == 0:
        raise TrajectoryError(f"{where}: no frames")
    return universe, topology_format


class TrajectoryError(ValueError):
    """A trajectory that cannot be read as frames of the spec's molecule; names the file and problem."""


# ----------------------------------------------------------------------------- damaged files
#
# MDAnalysis reads a damaged or truncated file without complaint up to a point: iterating an
# XTC stops quietly at a frame it cannot read, a partial frame at the end of an XTC is not
# counted, and reading such a frame by index raises OSError from deep inside the reader; NaN
# coordinates pass unnoticed until something downstream fails for what looks like another
# reason. Both readers of molenv (`Trajectory` and `molenv.plumed.reanalysis`) read frames through
# these functions, so that every such file is an error naming the file and the frame.


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_timestep(reader, index: int, where: str):
    """The MDAnalysis timestep of frame `index` of `reader`; a frame it cannot read (a
    truncated or damaged file) is a TrajectoryError naming the file (`where`) and the frame."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Reader has no dt information"; "seek failed, recalculating offsets"
            return reader[index]
    except (OSError, EOFError, ValueError, IndexError) as err:
        raise TrajectoryError(f"{where}: frame {index}: cannot read it ({_first_line(err)}): the file is damaged or truncated") from None


def check_positions(positions, where: str, index: int, atom_numbers=None) -> None:
    """TrajectoryError naming the file (`where`), the frame and the first atom where the
    coordinates of frame `index` hold NaN or inf (`molenv.frames.check_finite_positions`)."""
    try:
        check_finite_positions(positions, atom_numbers)
    except FrameError as err:
        raise TrajectoryError(f"{where}: frame {index}: {err}: the file is damaged, or the run that wrote it blew up") from None


def complete_frames(reader, path: str | Path) -> tuple[int, str] | None:
    """For an XTC or TRR file (whose frames MDAnalysis finds by their headers): None where
    its last frame is whole and ends the file, else (the number of whole frames, what is
    wrong with the next one). Other formats: None (their readers fail on the frame itself,
    which `read_timestep` reports)."""
    import os

    from MDAnalysis.coordinates.XDR import XDRBaseReader

    if not isinstance(reader, XDRBaseReader) or len(reader) == 0:
        return None
    n, size = len(reader), os.path.getsize(path)
    try:
        with reader._file(str(path)) as xdr:  # a handle of its own: the reader's position stays where it is
            xdr.set_offsets(reader._xdr.offsets)
            xdr.seek(n - 1)
            xdr.read()
            end = xdr._bytes_tell()
    except AttributeError:  # another MDAnalysis version without these internals: no check
        return None
    except (OSError, EOFError, ValueError) as err:
        return n - 1, f"cannot read it: {_first_line(err)}"
    if end < size:
        return n, f"only {size - end} bytes of it are there"
    return None


def check_complete(reader, path: str | Path, frames: range, stop: int | None) -> None:
    """TrajectoryError where `path` ends inside a frame (`complete_frames`: still being
    written, or copied or killed before the end) and `frames` (the indices to be read) are
    not explicitly limited to its whole frames: with ``stop`` None, or past them."""
    found = complete_frames(reader, path)
    if found is None:
        return
    whole, problem = found
    if stop is None or (len(frames) and max(frames) >= whole):
        raise TrajectoryError(f"{path}: the file ends inside frame {whole} ({problem}): it is truncated (still being written, "
                              f"or copied or killed before its end); --stop {whole} reads its {whole} whole frames")


# ----------------------------------------------------------------------------- elements


@functools.lru_cache(maxsize=None)
def symbol_tables() -> tuple[dict[str, int], dict[str, float]]:
    """(element symbol -> atomic number, element symbol -> standard mass), from MDAnalysis' tables."""
    from MDAnalysis.guesser.tables import SYMB2Z, masses

    symbols = {s.capitalize(): z for s, z in SYMB2Z.items()}
    return symbols, {s.capitalize(): m for s, m in masses.items() if s.capitalize() in symbols}


def _element_symbol(text: str, where: str) -> str:
    symbols, _ = symbol_tables()
    symbol = str(text).strip().capitalize()
    if symbol not in symbols:
        raise TrajectoryError(f"{where}: {text!r} is not an element symbol")
    return symbol


def element_from_mass(mass: float, tolerance: float = 0.1) -> str | None:
    """The element whose standard atomic mass is nearest to `mass` (u), if within `tolerance`."""
    _, masses = symbol_tables()
    symbol, best = min(masses.items(), key=lambda item: abs(item[1] - mass))
    return symbol if abs(best - mass) <= tolerance else None


def parse_type_elements(text: str) -> dict[str, str]:
    """``"1:H,2:O,3:C,4:N"`` -> {"1": "H", "2": "O", "3": "C", "4": "N"}."""
    out = {}
    for item in str(text).replace(" ", "").split(","):
        if not item:
            continue
        if item.count(":") != 1:
            raise TrajectoryError(f"type-element mapping {text!r}: expected 'type:Element' items separated by commas, got {item!r}")
        key, symbol = item.split(":")
        out[type_key(key)] = _element_symbol(symbol, f"type-element mapping {text!r}")
    if not out:
        raise TrajectoryError(f"type-element mapping {text!r} is empty")
    return out


def type_elements_from_data(path: str | Path, tolerance: float = 0.1) -> dict[str, str]:
    """LAMMPS numeric atom type -> element, from the Masses section of a LAMMPS data file.

    E.g. the reference ``formVII_cell_gaff.data`` gives types 1, 2, 8 H; 3 O; 4, 5, 9, 10 C;
    6, 7 N (the types of the reference nicotinamide dump).
    """
    path = Path(path)
    if not path.is_file():
        raise TrajectoryError(f"{path}: LAMMPS data file not found")
    masses: dict[str, float] = {}
    lines = path.read_text().splitlines()
    try:
        start = next(k for k, line in enumerate(lines) if line.split("#")[0].strip() == "Masses")
    except StopIteration:
        raise TrajectoryError(f"{path}: no 'Masses' section (needed to tell the elements of the atom types)") from None
    for line in lines[start + 1:]:
        fields = line.split("#")[0].split()
        if not fields:
            if masses:
                break
            continue
        if len(fields) < 2 or not fields[0].lstrip("-").isdigit():
            break
        masses[type_key(fields[0])] = float(fields[1])
    if not masses:
        raise TrajectoryError(f"{path}: the 'Masses' section is empty")
    out = {}
    for key, mass in masses.items():
        symbol = element_from_mass(mass, tolerance)
        if symbol is None:
            raise TrajectoryError(f"{path}: the mass {mass} of atom type {key} is no element's mass (within {tolerance} u)")
        out[key] = symbol
    return out


def _element_from_name(name: str, expected: list[str], where: str) -> str:
    """Element of an atom name: the longest of the spec's elements that starts the name
    (so 'NA' in a urea file is N, not sodium), else MDAnalysis' guess."""
    letters = "".join(c for c in name if c.isalpha()).upper()
    for symbol in sorted(set(expected), key=len, reverse=True):
        if letters.startswith(symbol.upper()):
            return symbol
    from MDAnalysis.guesser.default_guesser import DefaultGuesser

    symbols, _ = symbol_tables()
    symbol = str(DefaultGuesser(None).guess_atom_element(name)).capitalize()
    if symbol not in symbols:
        raise TrajectoryError(f"{where}: cannot tell the element of atoms named {name!r}; give type_elements or a file with elements")
    return symbol


def type_key(value) -> str:
    """Normalise an atom type ('3', 3, 3.0) to the string key used in type maps."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number == int(number) else text


# ----------------------------------------------------------------------------- reader


def dump_columns(path: Path) -> list[str]:
    """The column names of the first ``ITEM: ATOMS`` line of a LAMMPS dump."""
    with open(path) as fh:
        for line in fh:
            if line.startswith("ITEM: ATOMS"):
                return line.split()[2:]
    return []


def sniff_format(path: Path) -> str | None:
    """The MDAnalysis format molenv reads ``path`` as (by extension, then by content), or None
    to let MDAnalysis decide."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[suffix]
    try:
        with open(path, "rb") as fh:
            if fh.read(15) == b"ITEM: TIMESTEP\n":
                return "LAMMPSDUMP"
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------- objects in memory


def _is_ase_atoms(obj) -> bool:
    ase = sys.modules.get("ase")  # an ASE object exists only where ase was imported: no import here
    return ase is not None and isinstance(obj, ase.Atoms)


def _ase_time(frames: list) -> tuple[float, float] | None:
    """(dt, time of the first frame) from ``info["time"]`` (or ``"Time"``, as molenv's and
    OVITO's extended XYZ write it) where every frame has one and they are evenly spaced."""
    times = [a.info.get("time", a.info.get("Time")) for a in frames]
    try:
        t = np.array(times, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        return None
    if len(t) == 1:
        return 1.0, float(t[0])
    steps = np.diff(t)
    if steps[0] > 0 and np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        return float(steps[0]), float(t[0])
    return None


def _ase_box(atoms, k: int, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(box [a, b, c, alpha, beta, gamma], rotation or None) of frame `k`: no box without
    periodicity; the rotation takes the positions into MDAnalysis' cell orientation (a along
    x, b in the xy plane), None where the cell is in it already."""
    from molenv.frames import FrameError, box_matrix

    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return None, None
    if not pbc.all():
        raise TrajectoryError(f"{where}: frame {k}: pbc is {pbc.tolist()}, periodic along some cell vectors only (a slab or a wire); "
                              "molenv classifies systems periodic in all three directions (pbc=True) or in none (pbc=False, a cluster)")
    cell = np.array(atoms.cell[:], dtype=np.float64)
    if np.linalg.det(cell) < 0:  # left-handed: the same lattice with c reversed is right-handed
        cell[2] = -cell[2]
    from ase.cell import Cell

    dims = Cell(cell).cellpar()
    try:
        standard = box_matrix(dims)
    except FrameError as err:
        raise TrajectoryError(f"{where}: frame {k}: pbc is True but the cell is no 3D cell ({err}); give the cell, "
                              "or set pbc=False for a cluster") from None
    if cell[0, 1] == cell[0, 2] == cell[1, 2] == 0 and np.all(np.diag(cell) > 0):
        return dims, None  # lower triangular already: positions as they are (bit for bit)
    return dims, np.linalg.solve(cell, standard)  # cell @ rotation = standard, a proper rotation


def universe_from_ase(atoms, where: str = "ASE Atoms"):
    """An in-memory MDAnalysis ``Universe`` of ASE ``Atoms``, or of a sequence of them (the
    frames of one system: the same atoms in the same order in each).

    - atoms: elements and types from the chemical symbols; names from a per-atom ``names``
      array, or ``atomtypes`` (what ASE's PDB reader keeps of the atom names), where the
      Atoms carry one, else the symbols; one residue (ASE has none), so `Trajectory` cuts
      the molecules into contiguous blocks and orders their atoms by name, position or bonds
      (guessed from distances) as for any file without residues;
    - positions: float32 (MDAnalysis' ``MemoryReader``), rotated into MDAnalysis' cell
      orientation (a along x, b in the xy plane) where the cell is not lower triangular;
    - box: from the cell where ``pbc`` is all True, none where it is all False (a cluster);
      mixed ``pbc`` (a slab, a wire) is refused;
    - time (ps): ``info["time"]`` (or ``"Time"``) where every frame has one, evenly spaced,
      else the frame index.
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    frames = [atoms] if _is_ase_atoms(atoms) else list(atoms)
    if not frames:
        raise TrajectoryError(f"{where}: no frames (an empty list)")
    bad = [k for k, a in enumerate(frames) if not _is_ase_atoms(a)]
    if bad:
        raise TrajectoryError(f"{where}: frame {bad[0]} is a {type(frames[bad[0]]).__name__}, not ASE Atoms")
    first = frames[0]
    n = len(first)
    if n == 0:
        raise TrajectoryError(f"{where}: no atoms")
    for k, a in enumerate(frames[1:], 1):
        if len(a) != n or not np.array_equal(a.numbers, first.numbers):
            raise TrajectoryError(f"{where}: frame {k} has other atoms than frame 0 ({len(a)} atoms, {a.get_chemical_formula()}; "
                                  f"frame 0: {n}, {first.get_chemical_formula()}): frames of one system have the same atoms in the same order")
    symbols = np.array(first.get_chemical_symbols(), dtype=object)
    names = symbols
    for key in ("names", "atomtypes"):
        if key in first.arrays:
            names = np.array([str(x).strip() for x in first.arrays[key]], dtype=object)
            break
    positions = np.empty((len(frames), n, 3), dtype=np.float32)
    boxes = np.zeros((len(frames), 6), dtype=np.float64)  # a row of zeros: no box (MDAnalysis' convention)
    for k, a in enumerate(frames):
        box, rotation = _ase_box(a, k, where)
        xyz = np.asarray(a.positions, dtype=np.float64)
        positions[k] = xyz if rotation is None else xyz @ rotation
        if box is not None:
            boxes[k] = box
    universe = mda.Universe.empty(n, n_residues=1, atom_resindex=np.zeros(n, dtype=np.int64), trajectory=False)
    universe.add_TopologyAttr("names", names)
    universe.add_TopologyAttr("types", symbols)
    universe.add_TopologyAttr("elements", symbols)
    dt, offset = _ase_time(frames) or (1.0, 0.0)
    universe.load_new(positions, format=MemoryReader, dimensions=boxes if boxes.any() else None, dt=dt, time_offset=offset)
    return universe


def _in_memory(source) -> tuple | None:
    """(AtomGroup, description for messages) of an MDAnalysis Universe or group, or of ASE
    Atoms or a list of them; None for a file path."""
    if isinstance(source, (str, os.PathLike)):
        return None
    import MDAnalysis as mda
    from MDAnalysis.core.groups import GroupBase

    if isinstance(source, (mda.Universe, GroupBase)):
        atoms = source.atoms  # of an UpdatingAtomGroup: the atoms selected now
        if len(np.unique(atoms.indices)) != atoms.n_atoms:
            raise TrajectoryError(f"the {type(source).__name__} holds some atoms more than once")
        u = source.universe if isinstance(source, GroupBase) else source
        files = list(dict.fromkeys(str(f) for f in (getattr(u, "filename", None), u.trajectory.filename) if f))
        what = "Universe" if isinstance(source, mda.Universe) else f"{type(source).__name__} of {atoms.n_atoms} atoms"
        return atoms, f"{what} ({' + '.join(files) if files else 'in memory'})"
    if _is_ase_atoms(source):
        frames = [source]
    elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping, np.ndarray)):
        frames = list(source)  # a list, or e.g. an ase.io.Trajectory or ase.io.iread(...)
        if not frames or not all(_is_ase_atoms(a) for a in frames):
            raise TrajectoryError(f"a {type(source).__name__} of frames must hold ASE Atoms only" + ("" if frames else " (it is empty)"))
    else:
        raise TrajectoryError(f"cannot read a {type(source).__name__}: give a file path, an MDAnalysis Universe or AtomGroup, "
                              "or ASE Atoms (or a list of them, the frames of one system)")
    where = f"ASE Atoms ({len(frames)} frame{'s' if len(frames) != 1 else ''} of {len(frames[0])} atoms)"
    return universe_from_ase(frames, where).atoms, where


class Trajectory:
    """Frames of one system of identical molecules, read through MDAnalysis.

    ``Trajectory(path, spec, topology=None, ...)``: `path` is the coordinate file (or the
    only file); `topology` a separate topology (GRO/PDB/TPR/PSF/LAMMPS data) where `path`
    has none (XTC, TRR, DCD, or a dump whose types need a data file's molecules). `spec` is
    a `MoleculeSpec` or the name/path of one. Keyword options are described in the module
    docstring; ``format``/``topology_format`` override the format detection; ``dimensions``
    ([a, b, c, alpha, beta, gamma]) sets the box of every frame (e.g. for XYZ);
    ``periodic=False`` drops the box (a cluster); ``start``/``stop``/``step`` slice the frames.

    In place of `path`: an MDAnalysis ``Universe`` or ``AtomGroup`` (its atoms, in its
    order; ``selection`` selects within them), or ASE ``Atoms`` or a list of them
    (`universe_from_ase`). Such a source is read as it is: ``topology``/``format``/
    ``topology_format`` do not apply, frames are read from its trajectory (which this moves,
    as any MDAnalysis analysis does) and ``path``/``topology_path`` are None.

    ``len(traj)`` is the number of frames in the slice; iterating yields `MolecularFrame`s;
    ``traj[k]`` is the k-th frame of the slice. ``traj.molecules`` (n_molecules,
    atoms_per_molecule) and ``traj.atomic_numbers`` are the same for every frame;
    ``traj.molecules_from`` ("residues"/"blocks") and ``traj.atom_order`` ("name"/
    "position"/"bonds") say how they were found.
    """

    def __init__(
        self,
        path,
        spec: MoleculeSpec | str | Path,
        *,
        topology: str | Path | None = None,
        format: str | None = None,
        topology_format: str | None = None,
        selection: str | None = None,
        molecules: str = "auto",
        atom_order: str = "auto",
        name_map: Mapping[str, str] | None = None,
        type_elements: Mapping | str | Path | None = None,
        dimensions=None,
        periodic: bool = True,
        start: int | None = None,
        stop: int | None = None,
        step: int | None = None,
    ):
        in_memory = _in_memory(path)  # (AtomGroup, description) or None for a file
        if in_memory is not None:
            given = [name for name, value in (("topology", topology), ("format", format), ("topology_format", topology_format)) if value is not None]
            if given:
                raise TrajectoryError(f"{in_memory[1]}: {'= and '.join(given)}= are for files; an object in memory is read as it is")
        self._source = None if in_memory is None else in_memory[1]
        self.path = Path(path) if in_memory is None else None
        self.spec = spec if isinstance(spec, MoleculeSpec) else load_spec(spec)
        self.topology_path = None if in_memory is not None else Path(topology) if topology is not None else self.path
        if molecules not in ("auto", "residues", "blocks"):
            raise TrajectoryError(f"molecules must be 'auto', 'residues' or 'blocks', got {molecules!r}")
        if atom_order not in ("auto", "name", "position", "bonds"):
            raise TrajectoryError(f"atom_order must be 'auto', 'name', 'position' or 'bonds', got {atom_order!r}")
        self.name_map = {str(k): str(v) for k, v in (name_map or {}).items()}
        unknown = sorted(set(self.name_map.values()) - set(self.spec.atom_names))
        if unknown:
            raise TrajectoryError(f"name_map maps onto {', '.join(unknown)}, which spec {self.spec.name} does not have (atoms: {', '.join(self.spec.atom_names)})")
        self.periodic = periodic
        self.dimensions = None
        if dimensions is not None:
            from molenv.frames import FrameError, box_matrix

            try:
                box_matrix(dimensions)
            except FrameError as err:
                raise TrajectoryError(f"dimensions: {err}") from None
            self.dimensions = np.asarray(dimensions, dtype=np.float64)

        if step is not None and step < 1:
            raise TrajectoryError(f"step must be >= 1 (every step-th frame), got {step}")
        if in_memory is None:
            self.universe = self._open(format, topology_format)
            base = self.universe.atoms
        else:
            base = in_memory[0]
            self.universe = base.universe
            # the caller's Universe keeps the attributes its reader gave it: no LAMMPS dump
            # columns are looked up again in a file (`_types`)
            self._dump_topology = self._dump_types_in_element = self._dump_has_mass = False
            if len(self.universe.trajectory) == 0:
                raise TrajectoryError(f"{self._where()}: no frames")
        n_frames = len(self.universe.trajectory) if in_memory is None else self._whole_frames()
        self.frame_indices = range(*slice(start, stop, step).indices(n_frames))  # indices into the file of the frames this trajectory yields
        if in_memory is None:
            check_complete(self.universe.trajectory, self.path, self.frame_indices, stop)
        self.atoms = self._select(selection, base)
        self.molecules, self.molecules_from = self._molecule_rows(molecules)
        elements = self._elements(type_elements)
        symbols, _ = symbol_tables()
        self.atomic_numbers = np.array([symbols[e] for e in elements], dtype=np.int64)
        self.molecules, self.atom_order = self._order_atoms(elements, atom_order)
        self._check_elements(elements)

    # -- opening
    def _where(self) -> str:
        if self._source is not None:
            return self._source
        return str(self.path) if self.topology_path == self.path else f"{self.topology_path} + {self.path}"

    def _whole_frames(self) -> int:
        """The frames of a Universe the caller opened that can be read. Where its XTC/TRR file
        ends inside a frame (`complete_frames`), the frames before it, with a warning: the
        caller chose the reader, and a path gets the error of `check_complete` instead.
        In-memory readers have no file to check."""
        reader = self.universe.trajectory
        filename = getattr(reader, "filename", None)
        if not filename or not Path(str(filename)).is_file():
            return len(reader)
        found = complete_frames(reader, filename)
        if found is None:
            return len(reader)
        whole, problem = found
        warnings.warn(f"{filename}: the file ends inside frame {whole} ({problem}): it is truncated; its {whole} whole frames are read",
                      stacklevel=3)
        return whole

    def _open(self, format, topology_format):
        universe, topology_format = open_universe(self.path, self.topology_path, format=format, topology_format=topology_format,
                                                  where=self._where())
        self._dump_topology = topology_format == "LAMMPSDUMP"
        columns = dump_columns(self.topology_path) if self._dump_topology else []
        # the reference dumps call the numeric type column 'element'
        self._dump_types_in_element = "type" not in columns and "element" in columns
        self._dump_has_mass = "mass" in columns
        return universe

    def _select(self, selection, base):
        """The atoms of the molecules: `base` (the file's atoms, or the caller's group), or
        those of them that `selection` selects."""
        if selection is None:
            atoms = base
        else:
            from MDAnalysis.exceptions import SelectionError

            try:
                atoms = base.select_atoms(selection)
            except (SelectionError, ValueError, TypeError) as err:
                raise TrajectoryError(f"{self._where()}: invalid selection {selection!r}: {err}") from None
        if atoms.n_atoms == 0:
            what = f"selection {selection!r} matches no atoms" if selection else f"the {'file' if self._source is None else 'object'} holds no atoms"
            raise TrajectoryError(f"{self._where()}: {what}")
        return atoms

    # -- molecules
    def _molecule_rows(self, how: str) -> tuple[np.ndarray, str]:
        n, apm = self.atoms.n_atoms, self.spec.atoms_per_molecule
        resindices = self.atoms.resindices
        residues, counts = np.unique(resindices, return_counts=True)
        if how in ("auto", "residues"):
            if np.all(counts == apm):
                order = np.argsort(resindices, kind="stable")
                return order.reshape(-1, apm).astype(np.int64), "residues"
            if how == "residues" or len(residues) > 1:
                bad = residues[counts != apm][:3]
                described = ", ".join(f"resid {self.universe.residues[r].resid} has {c} atoms" for r, c in zip(bad, counts[counts != apm][:3]))
                raise TrajectoryError(
                    f"{self._where()}: the residues (molecules) do not all have the {apm} atoms of a {self.spec.name} "
                    f"molecule ({described}); select the {self.spec.name} atoms with selection=, or use "
                    "molecules='blocks' to cut the atoms into contiguous blocks instead"
                )
        if n % apm:
            raise TrajectoryError(f"{self._where()}: {n} atoms are not a whole number of {self.spec.name} molecules ({apm} atoms each)")
        return np.arange(n, dtype=np.int64).reshape(-1, apm), "blocks"

    # -- elements
    def _types(self) -> np.ndarray | None:
        if self._dump_topology and self._dump_types_in_element:
            if "element" not in self.universe.trajectory.ts.data:
                return None
            return np.array([type_key(t) for t in self.universe.trajectory.ts.data["element"]])[self.atoms.indices]
        if self._dump_topology and "type" not in dump_columns(self.topology_path):
            return None
        if not hasattr(self.atoms, "types"):
            return None
        return np.array([type_key(t) for t in self.atoms.types])

    def _elements(self, type_elements) -> np.ndarray:
        where = self._where()
        if type_elements is not None:
            if isinstance(type_elements, Mapping):
                mapping = {type_key(k): _element_symbol(v, "type_elements") for k, v in type_elements.items()}
            elif Path(str(type_elements)).is_file():
                mapping = type_elements_from_data(type_elements)
            else:
                mapping = parse_type_elements(str(type_elements))
            types = self._types()
            if types is None:
                raise TrajectoryError(f"{where}: type_elements was given but the file has no atom types")
            missing = sorted(set(types) - set(mapping), key=lambda t: (len(t), t))
            if missing:
                raise TrajectoryError(f"{where}: atom types {', '.join(missing)} are not in the type-element mapping {mapping}")
            return np.array([mapping[t] for t in types])
        if hasattr(self.atoms, "elements"):
            found = np.array([str(e).strip().capitalize() for e in self.atoms.elements])
            symbols, _ = symbol_tables()
            if len(found) and all(e in symbols for e in found):
                return found
        if hasattr(self.atoms, "masses") and (self._masses_from_file()):
            unique, inverse = np.unique(self.atoms.masses, return_inverse=True)
            by_mass = [element_from_mass(m) for m in unique]
            if None in by_mass:
                mass = unique[by_mass.index(None)]
                raise TrajectoryError(f"{where}: atoms of mass {mass} match no element's mass; give type_elements")
            return np.array(by_mass)[inverse]
        names = self._names()
        if names is not None:
            guessed = {name: _element_from_name(name, self.spec.elements, where) for name in np.unique(names)}
            return np.array([guessed[n] for n in names])
        raise TrajectoryError(
            f"{where}: cannot tell the atoms' elements: the file has no element symbols, masses or names "
            "(LAMMPS numeric types?); give type_elements, e.g. '1:H,2:O,3:C,4:N' or a LAMMPS data file with Masses"
        )

    def _masses_from_file(self) -> bool:
        """Whether the topology's masses were read from the file (not guessed by MDAnalysis)."""
        if self._source is not None:
            # a caller's Universe: no file format to go by (and none for one built in memory);
            # MDAnalysis records whether it guessed the masses
            masses = getattr(self.universe._topology, "masses", None)
            return masses is not None and not getattr(masses, "is_guessed", True)
        if sniff_format(self.topology_path) == "DATA":
            return True
        if self._dump_topology:
            return self._dump_has_mass
        return self.topology_path.suffix.lower() in (".psf", ".prmtop", ".parm7", ".top", ".tpr", ".mol2")

    def _names(self) -> np.ndarray | None:
        if hasattr(self.atoms, "names"):
            names = np.array([str(n).strip() for n in self.atoms.names])
            if len(names) and all(names):
                return names
        return None

    # -- atom order
    def _labels(self) -> np.ndarray | None:
        """Per-atom labels that name_map keys refer to: atom names, else LAMMPS types."""
        names = self._names()
        return names if names is not None else self._types()

    def _order_atoms(self, elements: np.ndarray, how: str) -> tuple[np.ndarray, str]:
        rows = self.molecules
        labels = self._labels()
        spec_names = self.spec.atom_names
        if how in ("auto", "name") and labels is not None:
            mapped = np.array([self.name_map.get(x, x) for x in labels])[rows]
            ordered = self._order_by_names(mapped)
            if ordered is not None:
                return np.take_along_axis(rows, ordered, axis=1), "name"
        if how == "name":
            if labels is None:
                raise TrajectoryError(f"{self._where()}: atom_order='name' but the file has no atom names")
            mapped = np.array([self.name_map.get(x, x) for x in labels])[rows]
            k = next(k for k in range(len(rows)) if sorted(mapped[k]) != sorted(spec_names))
            kind = "names" if self._names() is not None else "types (no names in the file)"
            raise TrajectoryError(
                f"{self._where()}: molecule {k} has atom {kind} {', '.join(mapped[k])}, spec {self.spec.name} has "
                f"{', '.join(spec_names)} (missing: {', '.join(sorted(set(spec_names) - set(mapped[k]))) or '-'}; "
                f"unknown: {', '.join(sorted(set(mapped[k]) - set(spec_names))) or '-'}); map them with name_map"
            )
        if how == "position" or (how == "auto" and not self.name_map and np.all(elements[rows] == np.array(self.spec.elements))):
            return rows, "position"
        return self._order_by_bonds(elements, labels), "bonds"

    def _order_by_names(self, mapped: np.ndarray) -> np.ndarray | None:
        index = {name: k for k, name in enumerate(self.spec.atom_names)}
        positions = np.vectorize(lambda x: index.get(x, -1), otypes=[np.int64])(mapped)
        if np.any(positions < 0):
            return None
        if not np.all(np.sort(positions, axis=1) == np.arange(self.spec.atoms_per_molecule)):
            return None
        return np.argsort(positions, axis=1)

    def _local_bonds(self, elements: np.ndarray) -> list[set[tuple[int, int]]]:
        """Per molecule, bonds as pairs of local (file-order) positions."""
        rows = self.molecules
        n_mol, apm = rows.shape
        local = np.full(self.universe.atoms.n_atoms, -1, dtype=np.int64)
        molecule_of = np.full(self.universe.atoms.n_atoms, -1, dtype=np.int64)
        global_rows = self.atoms.indices[rows]
        local[global_rows.ravel()] = np.tile(np.arange(apm), n_mol)
        molecule_of[global_rows.ravel()] = np.repeat(np.arange(n_mol), apm)
        bonds: list[set[tuple[int, int]]] = [set() for _ in range(n_mol)]
        if hasattr(self.universe.atoms, "bonds") and len(self.universe.atoms.bonds):
            pairs = self.universe.atoms.bonds.indices
            same = (molecule_of[pairs[:, 0]] >= 0) & (molecule_of[pairs[:, 0]] == molecule_of[pairs[:, 1]])
            for a, b in pairs[same]:
                bonds[molecule_of[a]].add((min(local[a], local[b]), max(local[a], local[b])))
            self.bonds_from = "topology"
            return bonds
        # guess: distance below 0.55 * (sum of vdW radii), MDAnalysis' default rule
        from MDAnalysis.guesser.tables import vdwradii

        radii = np.array([vdwradii.get(e.upper(), 1.5) for e in elements])[rows]
        first = self._read(0)
        pos = first.positions[rows]
        rel = minimum_image(pos[:, :, None, :] - pos[:, None, :, :], first.box)
        dist = np.linalg.norm(rel, axis=3)
        limit = 0.55 * (radii[:, :, None] + radii[:, None, :])
        m, a, b = np.nonzero((dist < limit) & (dist > 0.1) & np.triu(np.ones((apm, apm), bool), 1))
        for k, i, j in zip(m, a, b):
            bonds[k].add((int(i), int(j)))
        self.bonds_from = "guessed from distances in frame 0"
        return bonds

    def _order_by_bonds(self, elements: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        import networkx as nx
        from networkx.algorithms.isomorphism import GraphMatcher

        spec, where = self.spec, self._where()
        pinned = set(self.name_map.values())
        spec_graph = nx.Graph()
        for k, (name, element) in enumerate(zip(spec.atom_names, spec.elements)):
            spec_graph.add_node(k, label=(element, name if name in pinned else ""))
        spec_graph.add_edges_from(spec.bonds)
        match = lambda x, y: x["label"] == y["label"]  # noqa: E731
        # atoms that define the descriptors must not be interchangeable by the graph's symmetry
        defining = {a - 1 for a in spec.centre_atoms} | {a - 1 for v in spec.vectors for a in v}
        for auto in GraphMatcher(spec_graph, spec_graph, node_match=match).isomorphisms_iter():
            moved = sorted(k for k in defining if auto[k] != k)
            if moved:
                names = ", ".join(spec.atom_names[k] for k in moved)
                raise TrajectoryError(
                    f"{where}: ordering atoms by bonds cannot tell {names} of {spec.name} apart (they are "
                    "equivalent by elements and bonds); pin them with name_map, e.g. LAMMPS types "
                    "{'4': 'N1', '5': 'N2'}, or give atoms in spec order (atom_order='position')"
                )
        bonds = self._local_bonds(elements)
        rows = self.molecules
        pins = np.array([self.name_map.get(x, "") for x in labels]) if labels is not None else np.full(self.atoms.n_atoms, "")
        cache: dict = {}
        out = np.empty_like(rows)
        for m in range(len(rows)):
            key = (tuple(elements[rows[m]]), tuple(pins[rows[m]]), frozenset(bonds[m]))
            if key not in cache:
                graph = nx.Graph()
                for k in range(rows.shape[1]):
                    graph.add_node(k, label=(key[0][k], key[1][k]))
                graph.add_edges_from(bonds[m])
                matcher = GraphMatcher(spec_graph, graph, node_match=match)
                if not matcher.is_isomorphic():
                    raise TrajectoryError(
                        f"{where}: molecule {m} (atoms {', '.join(map(str, self.atoms.indices[rows[m]]))}) does not match "
                        f"the bonds and elements of spec {spec.name} (bonds {self.bonds_from}; elements "
                        f"{' '.join(key[0])}; pinned {dict((k, v) for k, v in enumerate(key[1]) if v) or 'none'})"
                    )
                cache[key] = np.array([matcher.mapping[k] for k in range(rows.shape[1])])
            out[m] = rows[m][cache[key]]
        return out

    def _check_elements(self, elements: np.ndarray) -> None:
        expected = np.array(self.spec.elements)
        found = elements[self.molecules]
        bad = np.argwhere(found != expected)
        if len(bad):
            m, k = bad[0]
            raise TrajectoryError(
                f"{self._where()}: molecule {m} atom {k + 1} ({self.spec.atom_names[k]}) is {found[m, k]}, spec "
                f"{self.spec.name} expects {expected[k]} ({len(np.unique(bad[:, 0]))} of {len(found)} molecules differ; "
                f"atoms ordered by {self.atom_order}, molecules from "
                f"{self.molecules_from}: elements in file order {' '.join(elements[np.sort(self.molecules[m])])}); "
                "use atom_order= / name_map= to map the file's atoms onto the spec"
            )

    # -- frames
    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)

    def __len__(self) -> int:
        return self.n_frames

    def frame_at(self, ts) -> MolecularFrame:
        """The frame of the MDAnalysis timestep ``ts`` the universe is positioned at (the
        selection, atom order and box of this trajectory applied); used by analyses that
        let MDAnalysis iterate."""
        box = None
        if self.periodic:
            if self.dimensions is not None:
                box = self.dimensions
            else:
                from molenv.frames import box_from_file

                try:
                    box = box_from_file(ts.dimensions)  # None: the file has no box; a degenerate one is an error
                except FrameError as err:
                    raise TrajectoryError(f"{self._where()}: frame {ts.frame}: {err}; give the box (dimensions=, --dimensions) "
                                          "or read the frames without periodic boundaries (periodic=False, --no-pbc)") from None
        positions = self.atoms.positions.astype(np.float64)
        check_positions(positions, self._where(), ts.frame, self.atoms.indices + 1)  # atoms numbered as in the file
        return MolecularFrame(
            positions=positions,
            box=box,
            molecules=self.molecules,
            atomic_numbers=self.atomic_numbers,
            time=float(ts.time),
        )

    def _read(self, index: int) -> MolecularFrame:
        ts = read_timestep(self.universe.trajectory, index, self._where())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Reader has no dt information")  # ts.time
            return self.frame_at(ts)

    def __getitem__(self, k: int) -> MolecularFrame:
        return self._read(self.frame_indices[k])

    def __iter__(self) -> Iterator[MolecularFrame]:
        for index in self.frame_indices:
            yield self._read(index)


def read_frames(path, spec, **options) -> list[MolecularFrame]:
    """All frames (of the ``start``/``stop``/``step`` slice) of a trajectory; options as `Trajectory`."""
    return list(Trajectory(path, spec, **options))


def read_frame(path, spec, index: int = 0, **options) -> MolecularFrame:
    """One frame (default the first) of a trajectory; options as `Trajectory`."""
    traj = Trajectory(path, spec, **options)
    try:
        return traj[index]
    except IndexError:
        raise TrajectoryError(f"{traj._where()}: frame {index} out of range ({traj.n_frames} frames)") from None
