"""One language for both model-file readers (issue 17): a corpus of good and bad model
files, each read by Python and by MOLENV_CLASSIFY's C++ reader, with the same outcome: both
accept it, with the same numbers, or both refuse it with the same message, word for word.

Python reads a file as the action does (`molenv.modelfile.read_model_file`: `read_model` or
`read_gnn_model` by `model_file_kind`); the C++ readers are run through the PLUMED Python API
in one process for the whole corpus (each file is one MOLENV_CLASSIFY line), so that the
corpus costs about a second. The files accepted are then classified by one `plumed driver`
run per kind, and the probabilities compared with Python's evaluation of the model Python
read.

The corpus is an edit of a valid small model file per case, one line each in SF_CASES
(base: regtest/rt-ortho-A/softmax.molenv) and GNN_CASES (base: a random toy GNN); the
language they pin is docs/model_format.md, "Syntax"."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _gnn_support import FRAMES, model_file
from molenv.modelfile import ModelFileError, read_model, read_model_file

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

SF_BASE = REGTEST / "rt-ortho-A" / "softmax.molenv"
OK = "accepted: the same model as the unedited file"
CHANGED = "accepted: another model"
REFUSED = ""  # refused, whatever the message (the same in both readers)


def sub(old: str | bytes, new: str | bytes, count: int = 1):
    """Replace the first `count` occurrences of `old` (text or bytes)."""
    old = old.encode() if isinstance(old, str) else old
    new = new.encode() if isinstance(new, str) else new

    def edit(data: bytes) -> bytes:
        assert old in data, old
        return data.replace(old, new, count)

    return edit


def every(old: str | bytes, new: str | bytes):
    return sub(old, new, -1)


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


# (id, edit of the file's bytes, expected: OK, CHANGED, REFUSED or a part of the message)
SF_CASES = [
    # real numbers: decimal, ASCII, finite (descriptor 2 is "S1 - 3.0 1.5")
    ("real 3", sub("S1 - 3.0", "S1 - 3"), OK),
    ("real 3.", sub("S1 - 3.0", "S1 - 3."), OK),
    ("real +3.0", sub("S1 - 3.0", "S1 - +3.0"), OK),
    ("real 3e0", sub("S1 - 3.0", "S1 - 3e0"), OK),
    ("real 3E+00", sub("S1 - 3.0", "S1 - 3E+00"), OK),
    ("real 30e-1", sub("S1 - 3.0", "S1 - 30e-1"), OK),
    ("real .3e1", sub("S1 - 3.0", "S1 - .3e1"), OK),
    ("real 003.000", sub("S1 - 3.0", "S1 - 003.000"), OK),
    ("real rounds to 3.0", sub("S1 - 3.0", "S1 - 3.00000000000000000000001"), OK),
    ("real .3", sub("S3 1 0.3", "S3 1 .3"), OK),
    ("real -.5", sub("S3 2 -0.5", "S3 2 -.5"), OK),
    ("real -5E-1", sub("S3 2 -0.5", "S3 2 -5E-1"), OK),
    ("real -0", sub("S2 - 1.3", "S2 - -0"), CHANGED),
    ("real underflow to 0", sub("S2 - 1.3", "S2 - 1e-400"), CHANGED),
    ("real subnormal", sub("S2 - 1.3", "S2 - 4.9e-324"), CHANGED),
    ("real 1e999", sub("S1 - 3.0", "S1 - 1e999"), "descriptor parameter: non-finite number '1e999'"),
    ("real -1e999", sub("S1 - 3.0", "S1 - -1e999"), "descriptor parameter: non-finite number '-1e999'"),
    ("real inf", sub("cutoff 3.5 4.5", "cutoff 3.5 inf"), "cutoff: non-finite number 'inf'"),
    ("real -Infinity", sub("S1 - 3.0", "S1 - -Infinity"), "descriptor parameter: non-finite number '-Infinity'"),
    ("real nan", sub("S1 - 3.0", "S1 - nan"), "descriptor parameter: non-finite number 'nan'"),
    ("real NaN", sub("S1 - 3.0", "S1 - NaN"), "descriptor parameter: non-finite number 'NaN'"),
    ("real nan(1)", sub("S1 - 3.0", "S1 - nan(1)"), "descriptor parameter: 'nan(1)' is not a number"),
    ("real 0x10", sub("S1 - 3.0", "S1 - 0x10"), "descriptor parameter: '0x10' is not a number"),
    ("real hex float", sub("S1 - 3.0", "S1 - 0x1.8p1"), "descriptor parameter: '0x1.8p1' is not a number"),
    ("real 1_000", sub("S1 - 3.0", "S1 - 1_000"), "descriptor parameter: '1_000' is not a number"),
    ("real junk", sub("S1 - 3.0", "S1 - 3.0abc"), "descriptor parameter: '3.0abc' is not a number"),
    ("real 3.0.0", sub("S1 - 3.0", "S1 - 3.0.0"), "'3.0.0' is not a number"),
    ("real 1e", sub("S1 - 3.0", "S1 - 1e"), "'1e' is not a number"),
    ("real e5", sub("S1 - 3.0", "S1 - e5"), "'e5' is not a number"),
    ("real .", sub("S1 - 3.0", "S1 - ."), "'.' is not a number"),
    ("real --3", sub("S1 - 3.0", "S1 - --3"), "'--3' is not a number"),
    ("real decimal comma", sub("S1 - 3.0", "S1 - 3,0"), "'3,0' is not a number"),
    ("real arabic-indic digit", sub("S1 - 3.0", "S1 - \u0663.0"), "'\u0663.0' is not a number"),
    ("real full-width digit", sub("S1 - 3.0", "S1 - \uff13.0"), "'\uff13.0' is not a number"),
    ("real superscript", sub("S1 - 3.0", "S1 - 3\u00b3"), "'3\u00b3' is not a number"),
    ("real in a layer row", sub("\n-0.17405873334188893 ", "\n-0.17405873334188893x "), "layer 1: '-0.17405873334188893x' is not a number"),
    # integers: [+-]?[0-9]+, magnitude <= 1000000
    ("int +5", sub("atoms_per_molecule 5", "atoms_per_molecule +5"), OK),
    ("int 05", sub("atoms_per_molecule 5", "atoms_per_molecule 05"), OK),
    ("int index 02", sub("descriptor 2 S1", "descriptor 02 S1"), OK),
    ("int index +2", sub("descriptor 2 S1", "descriptor +2 S1"), OK),
    ("int 5.0", sub("atoms_per_molecule 5", "atoms_per_molecule 5.0"), "atoms_per_molecule: '5.0' is not an integer"),
    ("int 5e0", sub("atoms_per_molecule 5", "atoms_per_molecule 5e0"), "atoms_per_molecule: '5e0' is not an integer"),
    ("int 0x5", sub("atoms_per_molecule 5", "atoms_per_molecule 0x5"), "'0x5' is not an integer"),
    ("int 1_0", sub("descriptor_count 10", "descriptor_count 1_0"), "descriptor_count: '1_0' is not an integer"),
    ("int full-width", sub("atoms_per_molecule 5", "atoms_per_molecule \uff15"), "atoms_per_molecule: '\uff15' is not an integer"),
    ("int index 2.0", sub("descriptor 2 S1", "descriptor 2.0 S1"), "descriptor: '2.0' is not an integer"),
    ("int 2^31", sub("atoms_per_molecule 5", "atoms_per_molecule 2147483648"), "atoms_per_molecule: '2147483648' is out of range (integers in a model file lie between -1000000 and 1000000)"),
    ("int 2^32+5", sub("atoms_per_molecule 5", "atoms_per_molecule 4294967301"), "'4294967301' is out of range"),
    ("int 2^63", sub("centre_atom 1", "centre_atom 9223372036854775808"), "centre_atom: '9223372036854775808' is out of range"),
    ("int -2^63-1", sub("centre_atom 1", "centre_atom -9223372036854775809"), "centre_atom: '-9223372036854775809' is out of range"),
    ("int 10^6+1", sub("descriptor_count 10", "descriptor_count 1000001"), "descriptor_count: '1000001' is out of range"),
    ("int 10^6 with zeros", sub("descriptor_count 10", "descriptor_count 0001000000"), "expected record 'descriptor', found 'scaling'"),
    ("int 10^12 layer", sub("layer 1 10 7", "layer 1 10 1000000000000"), "layer outputs: '1000000000000' is out of range"),
    ("int 2^32+7 layer", sub("layer 1 10 7", "layer 1 4294967306 7"), "layer inputs: '4294967306' is out of range"),
    ("int 10^6 x 10^6 layer", sub("layer 1 10 7", "layer 1 1000000 1000000"), "layer 1 row 1 has 11 numbers, expected 1000001 (bias + 1000000 weights)"),
    ("int negative count", sub("descriptor_count 10", "descriptor_count -1"), "'descriptor_count' needs non-negative counts, found -1"),
    ("int negative layers", sub("layer_count 3", "layer_count -3"), "'layer_count' needs non-negative counts, found -3"),
    ("int negative vectors", sub("vector_count 2", "vector_count -2"), "'vector_count' needs non-negative counts, found -2"),
    ("int -0 vectors", sub("vector_count 2", "vector_count -0"), "expected record 'cutoff', found 'vector'"),
    ("int negative classes", sub("classes 3 A", "classes -3 A"), "'classes' announces -3 names, found 3"),
    ("int negative atoms", sub("atoms_per_molecule 5", "atoms_per_molecule -5"), "atoms_per_molecule must be >= 1, got -5"),
    # control characters, line ends, encoding
    ("NUL", sub("name toy", "name to\x00y"), "3: control character 0x00 at byte 8 of the line; a model file holds no control characters but tab and line feed"),
    ("vertical tab", sub("\n-0.17405873334188893 ", "\n-0.17405873334188893\x0b"), "control character 0x0b at byte 21 of the line"),
    ("form feed", sub("\ncutoff", "\n\x0ccutoff"), "12: control character 0x0c at byte 1 of the line"),
    ("CR alone", sub("cutoff 3.5 4.5", "cutoff 3.5\r4.5"), "12: control character 0x0d at byte 11 of the line"),
    ("old Mac line ends", every("\n", "\r"), "1: control character 0x0d at byte 46 of the line"),
    ("CRLF", every("\n", "\r\n"), "1: the line ends with CR LF (a Windows line ending); a model file ends its lines with LF alone"),
    ("CRLF on one line", sub("end\n", "end\r\n"), "the line ends with CR LF"),
    ("DEL", sub("classes 3 A B Melt", "classes 3 A B Melt\x7f"), "control character 0x7f"),
    ("file separator", sub("S1 - 3.0 1.5", "S1 - 3.0\x1c1.5"), "control character 0x1c"),
    ("escape in a comment", sub("# molenv", "# \x1b[1mmolenv"), "1: control character 0x1b at byte 3"),
    ("tabs", sub("cutoff 3.5 4.5", "\tcutoff\t3.5 \t 4.5\t"), OK),
    ("BOM", lambda d: b"\xef\xbb\xbf" + d, "1: the file starts with a byte order mark (BOM); a model file is UTF-8 text without one"),
    ("BOM inside", sub("\nend", "\n\ufeffend"), "expected record 'end', found '\ufeffend'"),
    ("latin-1 byte", sub("name toy", b"name toy \xe9"), "3: byte 10 of the line (0xe9) is not UTF-8; a model file is UTF-8 text"),
    ("0xff in a comment", sub("# molenv", b"# \xff molenv"), "1: byte 3 of the line (0xff) is not UTF-8"),
    ("overlong UTF-8", sub("name toy", b"name \xc0\xaftoy"), "byte 6 of the line (0xc0) is not UTF-8"),
    ("UTF-8 surrogate", sub("name toy", b"name \xed\xa0\x80toy"), "byte 6 of the line (0xed) is not UTF-8"),
    ("UTF-8 above U+10FFFF", sub("name toy", b"name \xf4\x90\x80\x80toy"), "byte 6 of the line (0xf4) is not UTF-8"),
    ("UTF-8 cut at the line end", sub("name toy softmax (sigmoid hidden)", b"name toy \xe2\x82"), "3: byte 10 of the line (0xe2) is not UTF-8"),
    ("UTF-8 cut at the file end", lambda d: d + "# \u20ac".encode()[:-1], "byte 3 of the line (0xe2) is not UTF-8"),
    ("control before bad UTF-8", lambda d: d.replace(b"name toy", b"name \xfftoy").replace(b"cutoff 3.5", b"cutoff\x0b3.5"), "control character 0x0b"),
    ("UTF-8 text", sub("name toy", "name \u00fc\u65e5\u672c toy \U0001f600"), CHANGED),
    ("UTF-8 comment", sub("# molenv", "# \u00c5ngstr\u00f6m molenv"), OK),
    ("no-break space", sub("cutoff 3.5 4.5", "cutoff 3.5\u00a04.5"), "'cutoff' takes 2 fields, found 1"),
    ("ideographic space", sub("S1 - 3.0 1.5", "S1 - 3.0\u30001.5"), "descriptor parameter: '3.0\u30001.5' is not a number"),
    ("line separator", sub("cutoff 3.5 4.5", "cutoff 3.5\u20284.5"), "'cutoff' takes 2 fields, found 1"),
    ("next line (NEL)", sub("cutoff 3.5 4.5", "cutoff 3.5 4.5\u0085"), "cutoff: '4.5\u0085' is not a number"),
    ("non-ASCII class name", sub("classes 3 A B Melt", "classes 3 A B M\u00e9lt"), "class name 'M\u00e9lt' must match [A-Za-z0-9_]+"),
    ("quote in a class name", sub("classes 3 A B Melt", "classes 3 A B Me'lt"), "class name 'Me'lt' must match"),
    ("backslash in a kind", sub("S1 - 3.0", "S\\1 - 3.0"), "descriptor 2: unknown kind 'S\\1' (expected one of S1, S2, S3, S4)"),
    # white space, comments, line ends
    ("trailing white space", every("\n", " \t \n"), OK),
    ("no final newline", lambda d: d.rstrip(b"\n"), OK),
    ("extra final newlines", lambda d: d + b"\n\n  \n", OK),
    ("blank and comment lines", sub("\ncutoff", "\n\n   \n# a comment\n\t# another\ncutoff"), OK),
    ("comment after fields", sub("cutoff 3.5 4.5", "cutoff 3.5 4.5 # Angstrom"), OK),
    ("comment without space", sub("cutoff 3.5 4.5", "cutoff 3.5 4.5#A"), OK),
    ("comment eats a field", sub("cutoff 3.5 4.5", "cutoff 3.5 #4.5"), "12: 'cutoff' takes 2 fields, found 1"),
    ("comment in a name", sub("name toy softmax", "name toy # softmax"), CHANGED),
    # empty, truncated, duplicated and unknown records
    ("empty file", lambda d: b"", "unexpected end of file, expected molenv_model"),
    ("only comments", lambda d: b"# nothing\n\n# else\n", "unexpected end of file, expected molenv_model"),
    ("truncated in half", half, "42: layer 1 row 5 has 3 numbers, expected 11 (bias + 10 weights)"),
    ("truncated before end", sub("end\n", ""), "unexpected end of file, expected end"),
    ("truncated after a row", lambda d: d[: d.index(b"layer 2")], "unexpected end of file, expected layer"),
    ("truncated in a UTF-8 name", lambda d: d.replace(b"name toy", "name t\u00fcy".encode())[: d.index(b"name toy") + 7], "3: byte 7 of the line (0xc3) is not UTF-8"),
    ("duplicated name", sub("name toy", "name again\nname toy"), "4: expected record 'classes', found 'name'"),
    ("duplicated meta key", sub("meta seed 1", "meta seed 1\nmeta seed 2"), "6: 'meta' key 'seed' given twice"),
    ("meta without key", sub("meta seed 1", "meta"), "'meta' needs a key"),
    ("duplicated cutoff", sub("cutoff 3.5 4.5", "cutoff 3.5 4.5\ncutoff 3.5 4.5"), "expected record 'descriptor_count', found 'cutoff'"),
    ("duplicated end", lambda d: d + b"end\n", "unexpected record 'end' after 'end'"),
    ("unknown record", sub("hidden_activation", "dropout 0.5\nhidden_activation"), "expected record 'hidden_activation', found 'dropout'"),
    ("keyword case", sub("\nend", "\nEND"), "expected record 'end', found 'END'"),
    ("activation case", sub("hidden_activation sigmoid", "hidden_activation Sigmoid"), "unknown hidden activation 'Sigmoid'"),
    ("version 01", sub("molenv_model 1", "molenv_model 01"), "2: unsupported model file version 01 (this molenv reads versions 1 and 3)"),
    ("version 1.0", sub("molenv_model 1", "molenv_model 1.0"), "unsupported model file version 1.0"),
    ("version 2", sub("molenv_model 1", "molenv_model 2"), "unsupported model file version 2 (this molenv reads versions 1 and 3)"),
    ("version 2 kind gnn", sub("molenv_model 1", "molenv_model 2\nkind gnn"), "unknown record 'atoms_per_molecule' (expected 'topology_classes')"),
]

# Version 3 (the richer geometry): an edit of SF_BASE with a centroid centre, a plane normal
# and a sign-invariant vector; its cases are edits of that file.
SF3_BASE_EDITS = [("molenv_model 1", "molenv_model 3"), ("centre_atom 1", "centre_atoms 2 1 2"),
                  ("vector 2 3 5", "vector 2 normal 1 2 3 5 sign_invariant")]


def sf3_base(data: bytes) -> bytes:
    for old, new in SF3_BASE_EDITS:
        data = sub(old, new)(data)
    return data


SF3_CASES = [
    ("v3 base", lambda d: d, OK),
    ("v3 tabs and comment", sub("vector 2 normal 1 2 3 5 sign_invariant", "vector\t2 normal 1 2\t3 5   sign_invariant # cos^2"), OK),
    ("v3 plain vectors", sub("vector 2 normal 1 2 3 5 sign_invariant", "vector 2 3 5"), CHANGED),
    ("v3 single-atom centre", sub("centre_atoms 2 1 2", "centre_atom 1"), CHANGED),
    ("v3 sign-invariant plain vector", sub("vector 1 1 2", "vector 1 1 2 sign_invariant"), CHANGED),
    ("v3 normal without flag", sub(" sign_invariant", ""), CHANGED),
    ("v3 centroid of 5", sub("centre_atoms 2 1 2", "centre_atoms 5 1 2 3 4 5"), CHANGED),
    ("v3 centroid count", sub("centre_atoms 2 1 2", "centre_atoms 3 1 2"), "'centre_atoms' announces 3 atoms, found 2"),
    ("v3 centroid empty", sub("centre_atoms 2 1 2", "centre_atoms"), "'centre_atoms' announces 0 atoms, found -1"),
    ("v3 centroid of 1", sub("centre_atoms 2 1 2", "centre_atoms 1 1"), "a centroid centre needs two or more distinct atoms, got 1"),
    ("v3 centroid repeats", sub("centre_atoms 2 1 2", "centre_atoms 3 1 2 1"), "a centroid centre needs two or more distinct atoms, got 1 2 1"),
    ("v3 centroid atom 6", sub("centre_atoms 2 1 2", "centre_atoms 2 1 6"), "centre atom 6 is outside the molecule (1..5)"),
    ("v3 centroid atom 1.0", sub("centre_atoms 2 1 2", "centre_atoms 2 1.0 2"), "centre atom: '1.0' is not an integer"),
    ("v3 centroid count 2.0", sub("centre_atoms 2 1 2", "centre_atoms 2.0 1 2"), "centre_atoms: '2.0' is not an integer"),
    ("v3 normal of 3 atoms", sub("normal 1 2 3 5", "normal 1 2 3"), "'vector' needs: index a b, or index normal a b c d; then optionally sign_invariant"),
    ("v3 normal word case", sub("normal 1 2 3 5", "Normal 1 2 3 5"), "'vector' needs: index a b, or index normal a b c d"),
    ("v3 flag case", sub("sign_invariant", "Sign_invariant"), "'vector' needs: index a b, or index normal a b c d"),
    ("v3 flag twice", sub("sign_invariant", "sign_invariant sign_invariant"), "'vector' needs: index a b"),
    ("v3 flag first", sub("vector 2 normal 1 2 3 5 sign_invariant", "vector 2 sign_invariant normal 1 2 3 5"), "'vector' needs: index a b"),
    ("v3 flag alone", sub("vector 2 normal 1 2 3 5 sign_invariant", "vector sign_invariant"), "'vector' needs: index a b"),
    ("v3 normal arm on one atom", sub("normal 1 2 3 5", "normal 1 2 3 3"), "vector 2 starts and ends on atom 3"),
    ("v3 normal atom 9", sub("normal 1 2 3 5", "normal 1 2 3 9"), "vector 2 atom 9 is outside the molecule (1..5)"),
    ("v3 normal atom x", sub("normal 1 2 3 5", "normal 1 2 x 5"), "vector atom: 'x' is not an integer"),
    ("v3 vector index", sub("vector 2 normal", "vector 3 normal"), "vector: expected index 2, found 3"),
    ("v3 version 03", sub("molenv_model 3", "molenv_model 03"), "unsupported model file version 03 (this molenv reads versions 1 and 3)"),
    ("v3 records in version 1", sub("molenv_model 3", "molenv_model 1"), "expected record 'centre_atom', found 'centre_atoms'"),
    ("v3 normal in version 1", lambda d: sub("centre_atoms 2 1 2", "centre_atom 1")(sub("molenv_model 3", "molenv_model 1")(d)),
     "'vector' takes 3 fields, found 7"),
    ("v3 flag in version 1", lambda d: sub("centre_atoms 2 1 2", "centre_atom 1")(sub("molenv_model 3", "molenv_model 1")(sub("vector 1 1 2", "vector 1 1 2 sign_invariant")(d))),
     "'vector' takes 3 fields, found 4"),
    ("v3 version 4", sub("molenv_model 3", "molenv_model 4"), "unsupported model file version 4 (this molenv reads versions 1 and 3)"),
]

# the ood block (docs/model_format.md, "The ood block") on the inputs of the base's layer 3 (6)
OOD_BLOCK = "\n".join([
    "ood mahalanobis 3 6 2", "ood_softmin 1.0", "ood_threshold 12.5 1.25", "ood_calibration 0.99 0.9 100", "ood_whitening",
    *(" ".join("1.0" if i == j else "0.0" for i in range(6)) for j in range(6)),
    "ood_mean A 0.1 0.2 0.3 0.4 0.5 0.6", "ood_mean Melt -0.1 -0.2 -0.3 -0.4 -0.5 -0.6",
])


def with_ood(old: str = "", new: str = ""):
    """The base as version 3 (the ood block is a version 3 record) with the ood block before
    `end`, `old` in the block replaced by `new`."""

    def edit(data: bytes) -> bytes:
        assert old in OOD_BLOCK, old
        data = data.replace(b"molenv_model 1", b"molenv_model 3", 1)
        return data.replace(b"\nend", ("\n" + OOD_BLOCK.replace(old, new, 1) + "\nend").encode(), 1)

    return edit


SF_CASES += [
    ("ood block", with_ood(), CHANGED),
    ("ood block in version 1", lambda d: with_ood()(d).replace(b"molenv_model 3", b"molenv_model 1", 1), "expected record 'end', found 'ood'"),
    ("ood block, tabs and comments", with_ood("ood_softmin 1.0", "# calibration\n\tood_softmin\t1.0  # tau"), CHANGED),
    ("ood method", with_ood("mahalanobis", "gauss"), "unknown ood method 'gauss' (expected mahalanobis)"),
    ("ood fields", with_ood("mahalanobis 3 6 2", "mahalanobis 6 2"), "'ood' takes 4 fields, found 3"),
    ("ood layer 0", with_ood("mahalanobis 3 6 2", "mahalanobis 0 6 2"), "ood: layer 0 is not a layer of the network (1..3)"),
    ("ood layer 4", with_ood("mahalanobis 3 6 2", "mahalanobis 4 6 2"), "ood: layer 4 is not a layer of the network (1..3)"),
    ("ood layer +03", with_ood("mahalanobis 3 6 2", "mahalanobis +03 6 2"), CHANGED),
    ("ood layer 2.5", with_ood("mahalanobis 3 6 2", "mahalanobis 2.5 6 2"), "ood layer: '2.5' is not an integer"),
    ("ood width", with_ood("mahalanobis 3 6 2", "mahalanobis 3 7 2"), "ood: 7 features, but layer 3 has 6 inputs"),
    ("ood width of layer 2", with_ood("mahalanobis 3 6 2", "mahalanobis 2 6 2"), "ood: 6 features, but layer 2 has 7 inputs"),
    ("ood width 6.0", with_ood("mahalanobis 3 6 2", "mahalanobis 3 6.0 2"), "ood features: '6.0' is not an integer"),
    ("ood no means", with_ood("mahalanobis 3 6 2", "mahalanobis 3 6 0"), "ood: 0 class means for a model of 3 classes"),
    ("ood too many means", with_ood("mahalanobis 3 6 2", "mahalanobis 3 6 4"), "ood: 4 class means for a model of 3 classes"),
    ("ood missing mean", with_ood("mahalanobis 3 6 2", "mahalanobis 3 6 3"), "expected record 'ood_mean', found 'end'"),
    ("ood class other", lambda d: with_ood()(d.replace(b"classes 3 A B Melt", b"classes 3 A other Melt")),
     "a model with an ood block cannot have a class named 'other': its out-of-distribution component is n_other"),
    ("class other without ood", sub("classes 3 A B Melt", "classes 3 A other Melt"), CHANGED),
    ("ood temperature 0", with_ood("ood_softmin 1.0", "ood_softmin 0"), "ood_softmin: the temperature must be positive, got 0"),
    ("ood temperature nan", with_ood("ood_softmin 1.0", "ood_softmin nan"), "ood_softmin: non-finite number 'nan'"),
    ("ood width negative", with_ood("12.5 1.25", "12.5 -1"), "ood_threshold: the width must be positive, got -1"),
    ("ood threshold inf", with_ood("12.5 1.25", "inf 1.25"), "ood_threshold: non-finite number 'inf'"),
    ("ood quantiles swapped", with_ood("0.99 0.9 100", "0.9 0.99 100"),
     "ood_calibration: needs 0 < low quantile < quantile < 1 and a validation molecule, got 0.9 0.99 100"),
    ("ood no validation", with_ood("0.99 0.9 100", "0.99 0.9 0"), "ood_calibration: needs 0 < low quantile < quantile < 1 and a validation molecule"),
    ("ood validation 1.5", with_ood("0.99 0.9 100", "0.99 0.9 1.5"), "ood_calibration: '1.5' is not an integer"),
    ("ood whitening fields", with_ood("ood_whitening", "ood_whitening 6"), "'ood_whitening' takes 0 fields, found 1"),
    ("ood whitening row", with_ood("0.0 1.0 0.0 0.0 0.0 0.0", "0.0 1.0 0.0 0.0 0.0"), "ood_whitening row 2 has 5 numbers, expected 6"),
    ("ood whitening junk", with_ood("0.0 1.0 0.0 0.0 0.0 0.0", "0.0 1.0 0.0 0x0 0.0 0.0"), "ood_whitening: '0x0' is not a number"),
    ("ood mean class", with_ood("ood_mean A", "ood_mean C"), "ood_mean: 'C' is not a class of the model"),
    ("ood mean order", with_ood("ood_mean Melt", "ood_mean A"), "ood_mean: class 'A' is repeated or out of the classes' order"),
    ("ood mean fields", with_ood("0.5 0.6", "0.5"), "'ood_mean' takes 7 fields (a class and 6 numbers), found 6"),
    ("ood mean nan", with_ood("0.5 0.6", "0.5 NaN"), "ood_mean: non-finite number 'NaN'"),
    ("ood after end", lambda d: d + (OOD_BLOCK + "\n").encode(), "unexpected record 'ood' after 'end'"),
    ("ood before the layers", sub("layer_count 3", OOD_BLOCK + "\nlayer_count 3"), "expected record 'layer_count', found 'ood'"),
]

# The molecule spec a file carries (docs/model_format.md, "The molecule spec in a model
# file"): meta records, free text to both readers, so every file here is read alike (but for a
# meta key given twice, which both refuse); then `molenv.modelspec.model_spec` rebuilds the
# spec from what was read, or refuses it naming the record. Edits of SF_BASE with the records.
SPEC_META = ("meta seed 1\nmeta molecule toy\nmeta spec_atoms A:C B:O C:N D:H E:H\nmeta spec_bonds 1-2 1-3 3-4 3-5\n"
             "meta spec_smiles N%23C%2510")
SPEC_OK = "the spec is rebuilt"


def spec_base(data: bytes) -> bytes:
    return sub("meta seed 1", SPEC_META)(data)


# (id, edit, what the readers do: OK, CHANGED or their message, what model_spec does: SPEC_OK or its message)
SPEC_CASES = [
    ("spec base", lambda d: d, OK, SPEC_OK),
    ("spec tab and spaces", sub("A:C B:O", "A:C\t B:O"), OK, SPEC_OK),
    ("spec raw # is a comment", sub("N%23C%2510", "N#C"), CHANGED, SPEC_OK),  # the SMILES read is 'N': why the writer escapes '#'
    ("spec atom without element", sub("A:C", "A"), CHANGED, "meta spec_atoms: 'A' is not NAME:ELEMENT"),
    ("spec unknown element", sub("B:O", "B:Q"), CHANGED, "meta spec_atoms: 'B:Q': 'Q' is not an element symbol"),
    ("spec atom count", sub(" E:H", ""), CHANGED, "meta spec_atoms: 4 atoms, but the model's molecules have atoms_per_molecule 5"),
    ("spec bond atom 6", sub("3-5", "3-6"), CHANGED, "meta spec_bonds: bond 3-6 needs two different atoms in 1..5"),
    ("spec bond form", sub("3-5", "3,5"), CHANGED, "meta spec_bonds: '3,5' is not a bond a-b"),
    ("spec smiles escape", sub("N%23C%2510", "N%2C"), CHANGED, "meta spec_smiles: 'N%2C' is not one SMILES"),
    ("spec without bonds", sub("meta spec_bonds 1-2 1-3 3-4 3-5\n", ""), CHANGED, "lacks meta spec_bonds"),
    ("spec unknown record", sub("meta spec_smiles", "meta spec_charge 0\nmeta spec_smiles"), CHANGED, "unknown spec record(s) meta spec_charge"),
    ("spec GNN record in SF", sub("meta spec_smiles", "meta spec_centre 1\nmeta spec_smiles"), CHANGED, "unknown spec record(s) meta spec_centre"),
    ("spec records twice", sub("meta spec_bonds", "meta spec_bonds 1-2\nmeta spec_bonds"), "'meta' key 'spec_bonds' given twice", None),
]

GNN_CASES = [
    ("real 4.50", sub("graph_cutoff 4.5", "graph_cutoff 4.50"), OK),
    ("real 45e-1", sub("graph_cutoff 4.5", "graph_cutoff 45e-1"), OK),
    ("real +.45E+1", sub("graph_cutoff 4.5", "graph_cutoff +.45E+1"), OK),
    ("real eps 1E-5", sub("block_norm 8 1e-05", "block_norm 8 1E-5"), OK),
    ("real eps 0.00001", sub("block_norm 8 1e-05", "block_norm 8 0.00001"), OK),
    ("real eps underflow", sub("block_norm 8 1e-05", "block_norm 8 1e-5000"), "conv 1 layer_norm 'block_norm' eps must be a positive number, got 0.0"),
    ("real junk", sub("graph_cutoff 4.5", "graph_cutoff 4.5abc"), "graph_cutoff: '4.5abc' is not a number"),
    ("real inf", sub("graph_cutoff 4.5", "graph_cutoff inf"), "graph_cutoff: non-finite number 'inf'"),
    ("real 1e999", sub("graph_cutoff 4.5", "graph_cutoff 1e999"), "graph_cutoff: non-finite number '1e999'"),
    ("real hex", sub("graph_cutoff 4.5", "graph_cutoff 0x4.8p0"), "graph_cutoff: '0x4.8p0' is not a number"),
    ("real 4_5", sub("graph_cutoff 4.5", "graph_cutoff 4_5"), "graph_cutoff: '4_5' is not a number"),
    ("real full-width", sub("graph_cutoff 4.5", "graph_cutoff \uff14.5"), "graph_cutoff: '\uff14.5' is not a number"),
    ("real nan in a row", lambda d: _row(d, "linear output", 2, "nan"), "linear 'output' row 2 (8 weights): non-finite number 'nan'"),
    ("real junk in a row", lambda d: _row(d, "linear output", 1, "1.0abc"), "linear 'output' row 1 (8 weights): '1.0abc' is not a number"),
    ("int +1", sub("conv_count 1", "conv_count +1"), OK),
    ("int 01", sub("conv_count 1", "conv_count 01"), OK),
    ("int 1.0", sub("conv_count 1", "conv_count 1.0"), "conv_count: '1.0' is not an integer"),
    ("int 2^32+1", sub("conv_count 1", "conv_count 4294967297"), "conv_count: '4294967297' is out of range"),
    ("int element 6.0", sub("molecule_atoms 8 6", "molecule_atoms 8 6.0"), "molecule_atoms element: '6.0' is not an integer"),
    ("int 10^12 types", sub("atom_types 4 3", "atom_types 1000000000000 3"), "atom_types: '1000000000000' is out of range"),
    ("int 10^6 width", sub("atom_types 4 3", "atom_types 4 1000000"), "'atom_type' 1 has 3 embedding numbers, expected 1000000"),
    ("int 2^32+8 linear", sub("linear type_in 3 8 bias", "linear type_in 3 4294967304 bias"), "linear 'type_in' outputs: '4294967304' is out of range"),
    ("int 10^6 x 10^6 linear", sub("linear type_in 3 8 bias", "linear type_in 1000000 1000000 bias"), "linear 'type_in' row 1 (bias + 1000000 weights) has 4 numbers, expected 1000001"),
    ("int negative conv count", sub("conv_count 1", "conv_count -1"), "'conv_count' needs non-negative counts, found -1"),
    ("int exponent -5", sub("radial_basis bessel 4 5", "radial_basis bessel 4 -5"), "the envelope exponent must be >= 1, got -5"),
    ("CRLF", every("\n", "\r\n"), "1: the line ends with CR LF"),
    ("BOM", lambda d: b"\xef\xbb\xbf" + d, "the file starts with a byte order mark (BOM)"),
    ("form feed in a row", lambda d: _row(d, "linear output", 1, "\x0c0.5"), "control character 0x0c"),
    ("NUL at the end", lambda d: d + b"\x00", "control character 0x00 at byte 1 of the line"),
    ("not UTF-8", sub("name random", b"name \xferandom"), "byte 6 of the line (0xfe) is not UTF-8"),
    ("tabs in a row", lambda d: _row(d, "linear output", 1, None, sep=b"\t"), OK),
    ("trailing white space", every("\n", "  \n"), OK),
    ("no final newline", lambda d: d.rstrip(b"\n"), OK),
    ("empty file", lambda d: b"", "unexpected end of file, expected molenv_model"),
    ("truncated in half", half, REFUSED),
    ("duplicated meta key", sub("\nmeta purpose", "\nmeta purpose x\nmeta purpose"), "'meta' key 'purpose' given twice"),
    ("unknown record", sub("\npooling", "\ndropout 0.5\npooling"), "unknown record 'dropout' (expected 'pooling')"),
    ("duplicated record", sub("\npooling max", "\npooling max\npooling max"), "expected record 'head_block_count', found 'pooling'"),
    ("kind GNN", sub("\nkind gnn", "\nkind GNN"), "unknown model kind 'GNN'"),
    ("version 1", sub("molenv_model 2", "molenv_model 1"), "3: expected record 'name', found 'kind'"),
    ("version 02", sub("molenv_model 2", "molenv_model 02"), "unsupported model file version 02 (this molenv reads versions 1 and 3)"),
]

# the ood block of the GNN kind (version 4: version 2 and the ood block) on the features of
# layer 3 (head block 2's inputs, 8 features) of the base (8 atoms, 4 radial functions: layer 1
# has 32 features; 2 head blocks, hidden 8: layers 2, 3, 4)
GNN_OOD_BLOCK = "\n".join([
    "ood mahalanobis 3 8 2", "ood_softmin 1.0", "ood_threshold 12.5 1.25", "ood_calibration 0.99 0.9 100", "ood_whitening",
    *[" ".join("1.0" if i == j else "0.0" for i in range(8)) for j in range(8)],
    "ood_mean I 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8", "ood_mean melt -0.1 -0.2 -0.3 -0.4 -0.5 -0.6 -0.7 -0.8",
])


def gnn_ood_base(data: bytes) -> bytes:
    return data.replace(b"molenv_model 2", b"molenv_model 4", 1).replace(b"\nend", ("\n" + GNN_OOD_BLOCK + "\nend").encode(), 1)


def gnn_ood(old: str = "", new: str = ""):
    """The GNN ood base with `old` replaced by `new` in its ood block."""

    def edit(data: bytes) -> bytes:
        assert old in GNN_OOD_BLOCK, old
        return data.replace(GNN_OOD_BLOCK.encode(), GNN_OOD_BLOCK.replace(old, new, 1).encode(), 1)

    return edit


GNN_OOD_CASES = [
    ("ood block", gnn_ood(), OK),
    ("ood block in version 2", sub("molenv_model 4", "molenv_model 2"), "expected record 'end', found 'ood'"),
    ("version 4 without the block", lambda d: d.replace(("\n" + GNN_OOD_BLOCK).encode(), b"", 1), CHANGED),
    ("version 04", sub("molenv_model 4", "molenv_model 04"), "unsupported model file version 04 (this molenv reads versions 1 and 3)"),
    ("ood layer 4", gnn_ood("mahalanobis 3", "mahalanobis 4"), CHANGED),
    ("ood layer 1 of 32 features", gnn_ood("mahalanobis 3", "mahalanobis 1"), "ood: 8 features, but layer 1 has 32 inputs"),
    ("ood layer 0", gnn_ood("mahalanobis 3", "mahalanobis 0"), "ood: layer 0 is not a layer of the network (1..4)"),
    ("ood layer 5", gnn_ood("mahalanobis 3", "mahalanobis 5"), "ood: layer 5 is not a layer of the network (1..4)"),
    ("ood width", gnn_ood("mahalanobis 3 8 2", "mahalanobis 3 9 2"), "ood: 9 features, but layer 3 has 8 inputs"),
    ("ood too many means", gnn_ood("mahalanobis 3 8 2", "mahalanobis 3 8 4"), "ood: 4 class means for a model of 3 classes"),
    ("ood mean of a topology class", gnn_ood("ood_mean melt", "ood_mean bulk"), "ood_mean: 'bulk' is not a class of the model"),
    ("ood class other", sub("classes 3 I IV melt", "classes 3 I other melt"),
     "a model with an ood block cannot have a class named 'other': its out-of-distribution component is n_other"),
    ("ood topology class other", sub("topology_classes 2 bulk surface", "topology_classes 2 bulk other"),
     "a model with an ood block cannot have a class named 'other': its out-of-distribution component is n_other"),
    ("ood width negative", gnn_ood("12.5 1.25", "12.5 -1"), "ood_threshold: the width must be positive, got -1"),
    ("ood whitening row", gnn_ood("0.0 1.0 0.0 0.0 0.0 0.0 0.0 0.0", "0.0 1.0 0.0"), "ood_whitening row 2 has 3 numbers, expected 8"),
    ("ood unknown record", gnn_ood("ood_softmin", "ood_temperature"), "unknown record 'ood_temperature' (expected 'ood_softmin')"),
    ("ood before the output layer", lambda d: d.replace(("\n" + GNN_OOD_BLOCK).encode(), b"", 1).replace(
        b"\nlinear output", ("\n" + GNN_OOD_BLOCK + "\nlinear output").encode(), 1), "expected record 'linear', found 'ood'"),
    ("ood after end", lambda d: d.replace(("\n" + GNN_OOD_BLOCK).encode(), b"", 1) + (GNN_OOD_BLOCK + "\n").encode(), "unexpected record 'ood' after 'end'"),
]


def _row(data: bytes, header: str, row: int, first: str | None, sep: bytes = b" ") -> bytes:
    """Row `row` after the first line starting with `header`: its first number replaced by
    `first` (None: kept), its fields separated by `sep`."""
    lines = data.split(b"\n")
    i = next(k for k, line in enumerate(lines) if line.startswith(header.encode())) + row
    fields = lines[i].split(b" ")
    if first is not None:
        fields[0] = first.encode()
    lines[i] = sep.join(fields)
    return b"\n".join(lines)


# paths that are not model files: (id, make it in a folder -> path, message after the path)
PATH_CASES = [
    ("missing", lambda d: d / "missing.molenv", ": model file not found"),
    ("directory", lambda d: d, ": is a directory, not a model file"),
    ("character device", lambda d: Path("/dev/null"), ": is a character device, not a model file: give a regular file"),
    ("FIFO", lambda d: (os.mkfifo(d / "fifo.molenv"), d / "fifo.molenv")[1], ": is a FIFO (named pipe), not a model file: give a regular file"),
]

KINDS = {"sf": SF_CASES, "sf3": SF3_CASES, "gnn": GNN_CASES, "gnn4": GNN_OOD_CASES, "spec": [c[:3] for c in SPEC_CASES]}
MOLECULES = {"sf": "1-100", "sf3": "1-100", "gnn": "1-96", "gnn4": "1-96"}  # 20 molecules of 5 atoms; 12 of 8 (the GNN frame)

# Reads every file of a list with MOLENV_CLASSIFY in one PLUMED (Python API): the action
# is built (its model read), nothing computed. Prints, per file, null (accepted) or the
# error. The kernel must export its symbols to the module (PLUMED_LOAD_NAMESPACE=GLOBAL).
BATCH = """
import json, sys
import plumed
files = json.load(open(sys.argv[1]))
p = plumed.Plumed()
p.cmd("setNatoms", 100)
p.cmd("setLogFile", "/dev/null")
p.cmd("init")
p.cmd("readInputLine", "UNITS LENGTH=A")
p.cmd("readInputLine", "LOAD FILE=" + sys.argv[2])
out = []
for k, (path, molecules) in enumerate(files):
    try:
        p.cmd("readInputLine", f"c{k}: MOLENV_CLASSIFY MODEL={path} MOLECULES={molecules}")
        out.append(None)
    except Exception as err:
        out.append(str(err))
print(json.dumps(out))
"""


def plumed_errors(folder: Path, files: list[tuple[Path, str]]) -> list[str | None]:
    """For each (model file, MOLECULES): None where MOLENV_CLASSIFY accepts it, else its error
    (from 'cannot read MODEL: ' on where the reader refuses the file)."""
    from molenv.plumed.kernel import installed, module_path

    listing = folder / "files.json"
    listing.write_text(json.dumps([[str(p), m] for p, m in files]))
    env = installed().environment()
    env["PLUMED_LOAD_NAMESPACE"] = "GLOBAL"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(BATCH), str(listing), str(module_path())], env=env, capture_output=True, text=True)
    if proc.returncode == 0:
        errors = json.loads(proc.stdout.splitlines()[-1])
    else:  # no usable Python API for this kernel: one `plumed driver` per file (slower)
        errors = []
        for k, (path, molecules) in enumerate(files):
            run = run_driver(folder / f"driver{k}", f"LOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL={path} MOLECULES={molecules}\n",
                             ["--natoms", "100"])
            errors.append(None if run.returncode == 0 else run.output)
    marker = "cannot read MODEL: "
    return [e if e is None or marker not in e else marker + e.split(marker, 1)[1].split("\n")[0] for e in errors]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{(kind, id): (path, Python's error or the model, PLUMED's error or None)} for every case."""
    folder = tmp_path_factory.mktemp("corpus")
    gnn_base, _ = model_file(folder, seed=3, convs=1, name="gnn-base.molenv")
    bases = {"sf": SF_BASE.read_bytes(), "sf3": sf3_base(SF_BASE.read_bytes()), "gnn": gnn_base.read_bytes(), "spec": spec_base(SF_BASE.read_bytes())}
    bases["gnn4"] = gnn_ood_base(bases["gnn"])
    (folder / "sf3-base.molenv").write_bytes(bases["sf3"])
    (folder / "gnn4-base.molenv").write_bytes(bases["gnn4"])
    (folder / "spec-base.molenv").write_bytes(bases["spec"])
    paths = {}
    for kind, cases in KINDS.items():
        for k, (case, edit, _) in enumerate(cases):
            path = folder / f"{kind}{k:03d}.molenv"
            path.write_bytes(edit(bases[kind]))
            paths[kind, case] = path
    for case, make, _ in PATH_CASES:
        sub_folder = folder / f"path-{len(paths)}"
        sub_folder.mkdir()
        paths["path", case] = make(sub_folder)
    keys = list(paths)
    errors = plumed_errors(folder, [(paths[k], MOLECULES.get(k[0], "1-100")) for k in keys])
    result = {}
    for key, error in zip(keys, errors):
        try:
            python = read_model_file(paths[key])
        except ModelFileError as err:
            python = err
        result[key] = (paths[key], python, error)
    result["base"] = {kind: read_model_file(folder / f"{kind}-base.molenv" if kind != "sf" else SF_BASE) for kind in KINDS}
    return result


def _check(corpus, key, expected):
    path, python, plumed = corpus[key]
    if isinstance(python, ModelFileError):
        message = str(python)
        assert message.startswith(f"{path}"), message
        assert expected not in (OK, CHANGED), f"Python refuses the file: {message}"
        assert expected in message, f"expected {expected!r} in Python's message {message!r}"
        assert plumed is not None, f"PLUMED accepts the file that Python refuses with {message!r}"
        assert plumed == "cannot read MODEL: " + message, f"\nPython: {message}\nPLUMED: {plumed}"
    else:
        assert expected in (OK, CHANGED), f"Python accepts the file; expected a refusal with {expected!r}"
        assert plumed is None, f"PLUMED refuses the file that Python accepts: {plumed}"
        same = _same_model(python, corpus["base"][key[0]])
        assert same == (expected == OK), "the model differs from the unedited one" if expected == OK else "the edit changed nothing"


@pytest.mark.parametrize("case, expected", [(c, e) for c, _, e in SF_CASES], ids=[c for c, _, _ in SF_CASES])
def test_sf_corpus(corpus, case, expected):
    _check(corpus, ("sf", case), expected)


@pytest.mark.parametrize("case, expected", [(c, e) for c, _, e in SF3_CASES], ids=[c for c, _, _ in SF3_CASES])
def test_sf_version_3_corpus(corpus, case, expected):
    _check(corpus, ("sf3", case), expected)


@pytest.mark.parametrize("case, expected", [(c, e) for c, _, e in GNN_CASES], ids=[c for c, _, _ in GNN_CASES])
def test_gnn_corpus(corpus, case, expected):
    _check(corpus, ("gnn", case), expected)


@pytest.mark.parametrize("case, expected", [(c, e) for c, _, e in GNN_OOD_CASES], ids=[c for c, _, _ in GNN_OOD_CASES])
def test_gnn_version_4_corpus(corpus, case, expected):
    """The GNN kind with the ood block (version 4) and its refusals."""
    _check(corpus, ("gnn4", case), expected)


@pytest.mark.parametrize("case, expected, spec", [(c, e, s) for c, _, e, s in SPEC_CASES], ids=[c for c, *_ in SPEC_CASES])
def test_spec_records_corpus(corpus, case, expected, spec):
    """Both readers read the spec records alike (as meta text); model_spec then rebuilds the
    spec or refuses it, naming the file and the record."""
    from molenv.modelspec import model_spec
    from molenv.spec import SpecError

    _check(corpus, ("spec", case), expected)
    path, model, _ = corpus["spec", case]
    if spec == SPEC_OK:
        rebuilt = model_spec(model, str(path))
        assert rebuilt.atom_names == list("ABCDE") and rebuilt.elements == ["C", "O", "N", "H", "H"]
        assert rebuilt.bonds == [(0, 1), (0, 2), (2, 3), (2, 4)] and rebuilt.smiles == ("N" if "#" in case else "N#C%10")
        assert rebuilt.centre == 1 and rebuilt.vectors == [(1, 2), (3, 5)]  # the SF records'
    elif spec is not None:
        with pytest.raises(SpecError) as err:
            model_spec(model, str(path))
        assert str(err.value).startswith(f"{path}: ") and spec in str(err.value), err.value


@pytest.mark.parametrize("case, expected", [(c, e) for c, _, e in PATH_CASES], ids=[c for c, _, _ in PATH_CASES])
def test_paths_that_are_not_model_files(corpus, case, expected):
    path, python, plumed = corpus["path", case]
    assert isinstance(python, ModelFileError) and str(python) == f"{path}{expected}", python
    assert plumed == f"cannot read MODEL: {path}{expected}", plumed


def _same_model(a, b) -> bool:
    """Every field equal, arrays bit for bit (dataclasses of numbers, strings, arrays)."""
    if type(a) is not type(b):
        return False
    if hasattr(a, "__dataclass_fields__"):
        return all(_same_model(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_model(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_model(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return a == b


# ----------------------------------------------------------------------------- values


def test_accepted_sf_files_give_pythons_probabilities(corpus, tmp_path):
    """Every SF file both readers accept, classified by MOLENV_CLASSIFY (one driver run, an
    action per file): the probabilities of the model Python read, to 1e-9."""
    from molenv.descriptors import compute_descriptors
    from molenv.frames import MolecularFrame

    frames, boxes = read_xyz(REGTEST / "rt-ortho-A" / "traj.xyz")
    frame = MolecularFrame(frames[0], [*np.diag(boxes[0]), 90, 90, 90], np.arange(100).reshape(20, 5), np.full(100, 6))
    accepted = [(case, corpus[kind, case]) for kind, cases in (("sf", SF_CASES), ("sf3", SF3_CASES), ("spec", KINDS["spec"]))
                for case, _, e in cases if e in (OK, CHANGED)]
    text = "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n" + "".join(
        f"c{k}: MOLENV_CLASSIFY MODEL={path} MOLECULES=1-100 PROB_FILE=prob{k}.dat\n" for k, (_, (path, _, _)) in enumerate(accepted))
    text += f"PRINT ARG={','.join(f'c{k}.nmol' for k in range(len(accepted)))} FILE=colvar\n"  # computes them
    run = run_driver(tmp_path, text, ["--ixyz", "traj.xyz", "--length-units", "A"], {"traj.xyz": xyz_text(frames[:1], boxes[:1])})
    assert run.returncode == 0, run.output[-3000:]
    for k, (case, (_, model, _)) in enumerate(accepted):
        expected = model.predict_proba(compute_descriptors(frame, model.descriptors))
        fields, prob = run.read_table(f"prob{k}.dat")
        np.testing.assert_allclose(prob[:, 2:], expected, rtol=0, atol=1e-9, err_msg=case)


def test_accepted_gnn_files_give_pythons_probabilities(corpus, tmp_path):
    from molenv.gnn.numpy_model import classify_frame

    frame = FRAMES["orthorhombic"]
    accepted = [(case, corpus[kind, case]) for kind, cases in (("gnn", GNN_CASES), ("gnn4", GNN_OOD_CASES)) for case, _, e in cases if e in (OK, CHANGED)]
    text = "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n" + "".join(
        f"c{k}: MOLENV_CLASSIFY MODEL={path} MOLECULES=1-{frame.n_atoms} PROB_FILE=prob{k}.dat\n" for k, (_, (path, _, _)) in enumerate(accepted))
    text += f"PRINT ARG={','.join(f'c{k}.nmol' for k in range(len(accepted)))} FILE=colvar\n"  # computes them
    run = run_driver(tmp_path, text, ["--ixyz", "traj.xyz", "--length-units", "A"], {"traj.xyz": xyz_text([frame.positions], [frame.box_matrix()])})
    assert run.returncode == 0, run.output[-3000:]
    for k, (case, (_, model, _)) in enumerate(accepted):
        ref = classify_frame(model, frame)
        fields, prob = run.read_table(f"prob{k}.dat")
        np.testing.assert_allclose(prob[:, 2:], np.c_[ref.polymorph, ref.topology], rtol=0, atol=1e-9, err_msg=case)


def test_writers_refuse_text_the_readers_cannot_read_back(tmp_path):
    model = read_model(SF_BASE)
    model.name = "two\nlines\tand  spaces"
    from molenv.modelfile import write_model

    assert read_model(write_model(model, tmp_path / "a.molenv")).name == "two lines and spaces"
    model.meta["bell"] = "ring \x07"
    with pytest.raises(ModelFileError, match="meta bell 'ring \\\\x07' holds a control character"):
        write_model(model, tmp_path / "b.molenv")
    model.meta = {"two words": "x"}
    with pytest.raises(ModelFileError, match="meta key 'two words' must be one word"):
        write_model(model, tmp_path / "c.molenv")
