"""Compare a PLUMED output file with its reference, number by number.

    python regtest/compare.py OUTPUT REFERENCE [--rtol 1e-9] [--atol 1e-11]

Lines are compared in order, whitespace-separated token by token: two tokens that
both parse as numbers must satisfy |out - ref| <= atol + rtol*|ref|, any other tokens
must be equal.  Header lines (`#! FIELDS ...`) give the column names used in the
report.  Every difference is reported as  file:line column (name): value vs
reference (difference > tolerance); the exit status is 1 when there is any.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value


def compare_files(output: str | Path, reference: str | Path, rtol: float = 1e-9, atol: float = 1e-11, limit: int = 20) -> list[str]:
    """Messages describing every difference (empty list: the files agree)."""
    output, reference = Path(output), Path(reference)
    if not output.exists():
        return [f"{output}: missing (expected like {reference})"]
    out_lines = [l for l in output.read_text().splitlines() if l.strip()]
    ref_lines = [l for l in reference.read_text().splitlines() if l.strip()]
    problems: list[str] = []
    fields: list[str] = []
    if len(out_lines) != len(ref_lines):
        problems.append(f"{output}: {len(out_lines)} lines, reference {reference} has {len(ref_lines)}")
    for lineno, (o, r) in enumerate(zip(out_lines, ref_lines), 1):
        ot, rt = o.split(), r.split()
        if rt[:2] == ["#!", "FIELDS"]:
            fields = rt[2:]
        if len(ot) != len(rt):
            problems.append(f"{output}:{lineno}: {len(ot)} columns, reference has {len(rt)}\n    got: {o}\n    ref: {r}")
            continue
        for col, (a, b) in enumerate(zip(ot, rt), 1):
            x, y = _number(a), _number(b)
            name = f" ({fields[col - 1]})" if not r.startswith("#") and col <= len(fields) else ""
            if x is None or y is None:
                if a != b:
                    problems.append(f"{output}:{lineno} column {col}{name}: '{a}' vs reference '{b}'")
                continue
            tol = atol + rtol * abs(y)
            diff = abs(x - y)
            if not (diff <= tol) or math.isnan(x) != math.isnan(y):
                problems.append(f"{output}:{lineno} column {col}{name}: {a} vs reference {b} (difference {diff:.3g} > tolerance {tol:.3g})")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more differences"]
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("output")
    p.add_argument("reference")
    p.add_argument("--rtol", type=float, default=1e-9)
    p.add_argument("--atol", type=float, default=1e-11)
    args = p.parse_args(argv)
    problems = compare_files(args.output, args.reference, args.rtol, args.atol)
    for msg in problems:
        print(msg)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
