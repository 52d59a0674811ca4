"""Run the main job on the built-in data (what `make demo` does).

Trains the SF classifier on the committed urea MD data (forms I, IV, melt), evaluates it
(F1, confusion matrix, t-SNE), exports it, runs MOLENV_CLASSIFY through PLUMED on a
committed form I / form IV interface trajectory, and writes report.md with pictures.
A few minutes on 2 cores."""


def add_arguments(parser):
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--quick", action="store_true", help="every 5th frame only (for tests)")


def run(args):
    from molenv.demo import DemoError, run_demo
    from molenv.cli import CommandError

    try:
        report = run_demo(args.out, quick=args.quick)
    except DemoError as err:
        raise CommandError(str(err)) from None
    out = report.parent
    print(f"\nmolenv demo finished. Report: {report}")
    print(f"  pictures: {out / 'evaluation' / 'confusion_polymorph.png'}, {out / 'interface' / 'colvar.png'}, "
          f"{out / 'interface' / 'analysis' / 'populations.png'}")
    print(f"  model:    {out / 'sf' / 'model.molenv'}   (LOAD it in PLUMED with MOLENV_CLASSIFY MODEL=...)")
