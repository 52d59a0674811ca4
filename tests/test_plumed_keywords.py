"""docs/plumed_action.md cannot drift from the actions: the keyword table of each action lists
exactly the keywords it registers (numbered ones as numbered, flag and compulsory defaults as
registered) and the component table of MOLENV_CLASSIFY exactly its fixed components, as PLUMED
itself reports them (`plumed manual --action NAME`); MOLENV_PROBABILITIES has one value and no
components."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "plumed_action.md"
NUMBERED = "You can use multiple instances of this keyword"  # PLUMED's words for a numbered keyword
# action -> (the doc's section holding its keyword table, the section of its component table or
# None for an action with one value and no components)
ACTIONS = {
    "MOLENV_CLASSIFY": ("Keywords", "Components"),
    "MOLENV_PROBABILITIES": ("MOLENV_PROBABILITIES: the probabilities as a matrix", None),
}


def plumed_manual(action: str) -> str:
    """The HTML manual PLUMED prints for one of the module's actions.

    `plumed --load LIB manual` cannot name the action: PLUMED 2.10+ registers the actions of a
    library loaded at run time under a per-load prefix (``0x55d0...:MOLENV_CLASSIFY``) that
    changes from run to run. Preloaded (LD_PRELOAD), the module registers while the process
    starts, under its plain name."""
    from molenv.plumed.kernel import installed, module_path

    install = installed()
    env = install.environment()
    env["LD_PRELOAD"] = str(module_path())
    done = subprocess.run([install.executable, "manual", "--action", action], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "<table" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def registered(action: str) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """({keyword: (section, description)}, components) of the manual. Sections are PLUMED's
    headings (``Compulsory keywords``, ``Options``, ``The atoms involved ...``); a component
    ``.#!custom`` means that components are also named at run time (here from the classes),
    ``.#!value`` is the action's value."""
    keywords, components = {}, set()
    for section in plumed_manual(action).split("\\par ")[1:]:
        heading = section.splitlines()[0].strip()
        for row in re.findall(r"<tr>(.*?)</tr>", section, re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            name = re.search(r"<b>\s*(\S+)\s*</b>", cells[0]) if cells else None
            if name is None or name.group(1) == "Quantity":  # header rows
                continue
            if heading.startswith("Description of components"):
                components.add(name.group(1))
            else:
                keywords[name.group(1)] = (heading, " ".join(cells[-1].split()))
    return keywords, components


def doc_table(heading: str) -> list[list[str]]:
    """Rows (cells, stripped) of the first table under ``## heading`` in the doc."""
    text = DOC.read_text()
    body = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # no header, no |---|


def documented_keywords(heading: str) -> dict[str, tuple[bool, str]]:
    """{keyword: (numbered, default cell)} of the table under ``## heading``: a row
    ``MOLECULE1, MOLECULE2, ...`` documents the numbered keyword MOLECULE; ``PATH_START,
    PATH_END`` documents two keywords."""
    out = {}
    for cells in doc_table(heading):
        numbered = "..." in cells[0]
        for name in re.findall(r"`([A-Z0-9_]+)`", cells[0]):
            key = re.sub(r"\d+$", "", name) if numbered else name
            assert key not in out or numbered, f"{DOC.name}: {key} documented twice"
            out[key] = (numbered, cells[1])
    return out


@pytest.fixture(scope="module", params=list(ACTIONS))
def plumed_keywords(request):
    return request.param, *registered(request.param)


def test_every_registered_keyword_is_documented_and_no_other(plumed_keywords):
    action, keywords, _ = plumed_keywords
    documented = documented_keywords(ACTIONS[action][0])
    assert documented, f"no keyword table under the heading of {action}"
    assert sorted(set(keywords) - set(documented)) == [], "registered but not in the keyword table of docs/plumed_action.md"
    assert sorted(set(documented) - set(keywords)) == [], "in the keyword table of docs/plumed_action.md but not registered"
    for name, (section, description) in keywords.items():
        numbered, default = documented[name]
        assert numbered == (NUMBERED in description), f"{name}: numbered in one of PLUMED and the doc only"
        registered_default = re.match(r"\( default=(\S+) \)", description)
        if section.startswith("Compulsory"):
            expected = registered_default.group(1) if registered_default else "(compulsory)"
            assert default.strip("`") == expected, f"{name}: default {default} in the doc, {expected} registered"
        elif registered_default:  # flags
            assert default == registered_default.group(1), f"{name}: default {default} in the doc, {registered_default.group(1)} registered"


def test_components_are_documented(plumed_keywords):
    action, _, components = plumed_keywords
    heading = ACTIONS[action][1]
    if heading is None:
        assert components == {".#!value"}
        return
    documented = {re.sub(r"`", "", cells[0]) for cells in doc_table(heading)}
    fixed = {c for c in components if not c.startswith(".")}
    named_at_run_time = {c for c in documented if "<" in c}  # n_<CLASS>, p_<TOPOLOGY>, ...
    assert documented - named_at_run_time == fixed
    assert not named_at_run_time or ".#!custom" in components, "the doc lists components named from the model, PLUMED none"
