"""Add the out-of-distribution score (the ood block) to an existing model file (SF or GNN).

  molenv ood-calibrate urea.molenv DATASET --out urea-ood.molenv

Fits the class-conditional Gaussians of the score (`molenv.ood`) to the features of the
model's molecules on the training molecules of DATASET (a `molenv featurize` directory; for
an SF model made with the model's descriptors) and calibrates its threshold on the
validation molecules: other > 0.5 for the 0.99 quantile of them (--quantile). The features
are those of one layer (--layer K): SF, the inputs of dense layer K (default 1, the scaled
descriptors); GNN, layer K of `GNNModel.ood_layer_inputs` (default 1, the radial basis summed
over each atom's neighbours, the molecule's atoms concatenated; 2 the pooled molecule
embedding; the number of head blocks + 2: the last hidden features), from every frame of the
splits (--frame-step N: every N-th). Dataset classes are matched to the model's
by name (ignoring case); molecules of other classes are left out. The network, classes and
meta records are copied unchanged (an ood block already there is replaced), so
MOLENV_CLASSIFY gives the same probabilities with the new file, and OOD adds the class
other (docs/plumed_action.md). `molenv export` writes the block itself for new models.
"""
from __future__ import annotations

from molenv.commands._options import positive_int


def add_arguments(parser):
    parser.add_argument("model", help="model file (.molenv), SF or GNN")
    parser.add_argument("dataset", help="dataset directory of `molenv featurize` (for an SF model, featurized with the model's descriptors)")
    parser.add_argument("--out", required=True, help="model file to write (.molenv)")
    parser.add_argument("--quantile", type=float, default=0.99, help="fraction of the known-class validation molecules below the threshold (default 0.99)")
    parser.add_argument("--layer", type=int, help="the features: the inputs of this layer; SF: dense layer (1: the scaled descriptors, the default; "
                        "the number of layers: the last hidden layer's outputs); GNN: 1 the radial sums of the molecule's atoms, the default; "
                        "2 the pooled molecule embedding; the number of head blocks + 2: the last hidden features)")
    parser.add_argument("--include-clusters", action="store_true", help="SF: also clusters and surface molecules (default: periodic bulk, as `molenv train sf`)")
    parser.add_argument("--frame-step", type=positive_int, default=1, metavar="N", help="GNN: every N-th frame of each source (default 1: all)")


def run(args):
    from pathlib import Path

    from molenv.cli import CommandError
    from molenv.dataset import open_dataset
    from molenv.modelfile import ModelFileError, model_file_kind, read_model, write_model
    from molenv.ood import DEFAULT_LAYER, GNN_DEFAULT_LAYER, LOW_QUANTILE, OODError, calibrate_gnn, calibrate_sf, describe

    kind = model_file_kind(args.model)
    if kind == "sf" and args.frame_step != 1:
        raise CommandError("--frame-step selects the frames a GNN model is calibrated on; an SF model is calibrated on every molecule")
    if kind == "gnn" and args.include_clusters:
        raise CommandError("--include-clusters is for SF models; a GNN model is calibrated on every frame, clusters included")
    if Path(args.out).resolve() == Path(args.model).resolve():
        raise CommandError(f"--out {args.out}: write the calibrated model to a new file, not over {args.model}")
    if not 0 < args.quantile < 1:
        raise CommandError(f"--quantile must lie between 0 and 1, got {args.quantile}")
    options = dict(quantile=args.quantile, low_quantile=min(LOW_QUANTILE, args.quantile * 0.9))
    if kind == "gnn":
        from molenv.gnn.modelfile import read_gnn_model, write_gnn_model

        model = read_gnn_model(args.model)
        dataset = open_dataset(args.dataset)
        try:
            model.ood = calibrate_gnn(model, dataset, args.layer or GNN_DEFAULT_LAYER, step=args.frame_step, **options)
            write_gnn_model(model, args.out)
        except (OODError, ModelFileError) as err:
            raise CommandError(str(err)) from None
    else:
        model = read_model(args.model)
        dataset = open_dataset(args.dataset)
        try:
            model.ood = calibrate_sf(model, dataset, args.include_clusters, layer=args.layer or DEFAULT_LAYER, **options)
        except OODError as err:
            raise CommandError(str(err)) from None
        write_model(model, args.out)
    print(describe(model.ood, kind))
    print(f"wrote {args.out}")
    return 0
