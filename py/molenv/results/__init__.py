"""The accuracy table of the classifiers on our MD data: docs/results.md and results.json.

- `molenv.results.pipeline`: runs the `molenv` steps (featurize, train, evaluate) per
  molecule and protocol, and records them;
- `molenv.results.collect`: gathers the numbers from the files of the runs (`Results`);
- `molenv.results.diagnostics`: what the metrics lack, computed from the models;
- `molenv.results.figures`: small copies of the evaluations' PNGs;
- `molenv.results.render` with templates.toml: the markdown page;
- `molenv.results.cli`: the command line of scripts/results.py.
"""
