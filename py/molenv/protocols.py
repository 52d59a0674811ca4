"""Which trajectories of an MD manifest (data/manifest.json) a training protocol uses.

The paper's protocol (METHOD.md §4) trains on crystals and clusters at one temperature (the
lowest of their kind) and the melt. The manifest may also hold training crystals and
clusters at further temperatures (data/generate.py's multi-temperature runs); the
multi-temperature protocol of scripts/results.py trains on those too, and `method_only`
gives the `molenv featurize --only` patterns that leave them out again.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path


def manifest_entries(manifest_path: str | Path) -> list[dict]:
    """The trajectory entries of an MD manifest."""
    return json.loads(Path(manifest_path).read_text())["trajectories"]


def extra_training(entries: list[dict], molecule: str) -> list[dict]:
    """Training crystals and clusters of `molecule` above the lowest training temperature of
    their kind of system, in manifest order: what the multi-temperature protocol adds to the
    paper's (entries need name, molecule, system, split, temperature_K)."""
    train = [e for e in entries if e["molecule"] == molecule and e["system"] in ("crystal", "cluster")
             and e["split"] == "train" and e.get("temperature_K") is not None]
    cold = {}
    for e in train:
        cold[e["system"]] = min(cold.get(e["system"], e["temperature_K"]), e["temperature_K"])
    return [e for e in train if e["temperature_K"] > cold[e["system"]] + 1e-6]


def crystal_test_temperature(entries: list[dict], molecule: str) -> float:
    """The temperature of `molecule`'s test crystals (the one the thermal-augmentation
    protocol warms the training crystals to); ValueError without test crystals or with test
    crystals at several temperatures."""
    temps = sorted({e["temperature_K"] for e in entries if e["molecule"] == molecule and e["system"] == "crystal" and e["split"] == "test"
                    and e.get("temperature_K") is not None})
    if len(temps) != 1:
        raise ValueError(f"{molecule}: the manifest's test crystals are at {', '.join(f'{t:g} K' for t in temps) or 'no temperature'}; "
                         "thermal augmentation needs them at one temperature")
    return float(temps[0])


def has_test_clusters(entries: list[dict], molecule: str) -> bool:
    """Whether `molecule` has clusters in vacuum among its test trajectories (urea's at 200 K):
    the thermal-augmentation protocol then warms its training clusters too."""
    return any(e["molecule"] == molecule and e["system"] == "cluster" and e["split"] == "test" for e in entries)


def method_only(entries: list[dict], molecule: str) -> list[str] | None:
    """`featurize --only` patterns for the paper protocol: every trajectory of `molecule`
    but the extra training trajectories (`extra_training`), as `<molecule>-*-<T>K` patterns
    where such a pattern takes none of those, else by name; None when there are none to
    leave out (then featurize takes everything)."""
    extra = {e["name"] for e in extra_training(entries, molecule)}
    if not extra:
        return None
    kept = [e for e in entries if e["molecule"] == molecule and e["name"] not in extra]
    patterns = []
    for t in dict.fromkeys(e.get("temperature_K") for e in kept):
        group = [e["name"] for e in kept if e.get("temperature_K") == t]
        pattern = f"{molecule}-*-{t:g}K" if t is not None else None
        if pattern and not any(fnmatch.fnmatchcase(n, pattern) for n in extra):
            patterns.append(pattern)
        else:
            patterns += group
    return patterns
