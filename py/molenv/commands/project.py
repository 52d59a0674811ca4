"""From a molecule's crystal structures to a PLUMED model in one resumable command.

  molenv project init --molecule urea --form I=formI.cif --form IV=formIV.cif --out urea/project.toml
  molenv project run urea/project.toml                    # every stage; again after an interruption: goes on
  molenv project run urea/project.toml --until featurize  # stop after a stage; --from train: rerun from one
  molenv project status urea/project.toml                 # what is done

`init` writes a commented project file (the molecule spec, its forms and structure files,
temperatures, the melt, MD lengths, threads, classifiers; every key in docs/new_molecule.md).
`run` checks the whole file first (naming the file and key of any problem), then runs the
stages simulate -> design (optional) -> featurize -> train (SF, GNN optional) -> export (the SF
model with its out-of-distribution score) -> evaluate -> plumed-input in the project directory,
skipping every task whose outputs are complete for the current settings
(project-state.json) and resuming interrupted MD runs from their checkpoints. See
docs/new_molecule.md and molenv.project.
"""
from __future__ import annotations

from molenv.project import STAGES as STAGE_NAMES  # standard library only: --help stays fast


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="write a commented project file", description="Write a commented project file (docs/new_molecule.md).")
    init.add_argument("--molecule", required=True, help="molecule spec: a shipped name (urea, nicotinamide) or a spec .toml (docs/spec.md); "
                      "or a SMILES: a first spec is designed from the structures (design0/ beside the project file) and the design stage is on")
    init.add_argument("--form", action="append", default=[], metavar="LABEL=STRUCTURE", required=True,
                      help="a crystal form and its structure file (CIF/PDB); repeatable")
    init.add_argument("--temperature", action="append", type=float, metavar="K", help="a temperature of the crystal runs, K; repeatable (default 100 and 200)")
    init.add_argument("--symmetrise", action="append", default=[], metavar="LABEL=TOL",
                      help="symmetrise the approximate structure of form LABEL first (spglib tolerance, A), e.g. IV=0.3; repeatable")
    init.add_argument("--no-progress", action="store_true", help="no progress bars (the design of a first spec)")
    init.add_argument("--melt-form", metavar="LABEL", help="the form melted for the melt class (default: the first)")
    init.add_argument("--name", help="project name (default: the molecule's)")
    init.add_argument("--out", required=True, help="project file to write (.toml)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing file")
    run = sub.add_parser("run", help="run the project's stages (skipping what is done)", description="Run the stages of a project file.")
    run.add_argument("project", help="project file (.toml)")
    run.add_argument("--until", choices=STAGE_NAMES, metavar="STAGE", help=f"stop after this stage ({', '.join(STAGE_NAMES)})")
    run.add_argument("--from", dest="start", choices=STAGE_NAMES, metavar="STAGE",
                     help="run this stage and the later ones again, even where done (the earlier ones must be done)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    status = sub.add_parser("status", help="what is done", description="Table of the stages and tasks of a project and their state.")
    status.add_argument("project", help="project file (.toml)")


def _pair(item: str, option: str, expected: str) -> tuple[str, str]:
    from molenv.cli import CommandError

    label, sep, value = item.partition("=")
    if not sep or not label or not value:
        raise CommandError(f"{option} {item!r}: expected {expected}")
    return label, value


def run(args):
    from molenv.cli import CommandError
    from molenv.commands._options import positive_float
    from molenv.project import ProjectError, load_project, project_status, run_project, write_template

    try:
        if args.action == "init":
            forms = [_pair(item, "--form", "LABEL=STRUCTURE, e.g. I=formI.cif") for item in args.form]
            symmetrise = {}
            for item in args.symmetrise:
                label, tol = _pair(item, "--symmetrise", "LABEL=TOL, e.g. IV=0.3")
                try:
                    symmetrise[label] = positive_float(tol)
                except Exception:  # argparse.ArgumentTypeError
                    raise CommandError(f"--symmetrise {item!r}: expected LABEL=TOL with a tolerance > 0 in A, e.g. IV=0.3") from None
            out = write_template(args.out, molecule=args.molecule, forms=forms, name=args.name, temperatures=args.temperature,
                                 melt_form=args.melt_form, symmetrise=symmetrise, overwrite=args.overwrite, progress=not args.no_progress)
            project = load_project(out)
            print(f"wrote {out}: {len(project.runs)} MD runs ({', '.join(r.name for r in project.runs)}); edit it, then: molenv project run {out}")
            return 0
        if args.action == "run":
            run_project(args.project, until=args.until, start=args.start, progress=not args.no_progress)
            return 0
        rows = project_status(args.project)
        width = [max(len(r[k]) for r in rows) for k in range(2)]
        print(f"{'stage':<{width[0]}}  {'task':<{width[1]}}  state")
        for stage, task, state in rows:
            print(f"{stage:<{width[0]}}  {task:<{width[1]}}  {state}")
        return 0
    except ProjectError as err:
        raise CommandError(str(err)) from None
