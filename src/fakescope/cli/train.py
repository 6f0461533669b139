"""``fakescope train``: train the detector from a YAML config with ``section.key=value`` overrides."""
from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Train the detector as a config file says (see configs/), for example:

  fakescope train --config configs/ffpp-mini.yaml
  fakescope train --config configs/ffpp-mini.yaml trainer.max_epochs=3 optim.lr=3e-4
  fakescope train --config configs/ffpp-mini.yaml --resume last
  fakescope train --config configs/default-model.yaml      # the recipe of the shipped weights

Face crops are extracted once into data.cache (resumable), then clips of data.clip_length consecutive sampled
frames of one face track are drawn at random positions, augmented identically across the clip, and fitted with
per-frame cross-entropy (Adam, a slower learning rate for the pretrained backbone, a scheduler). The checkpoint
with the best validation video-level ROC-AUC (trainer.export=best) or the last one (trainer.export=last) is
exported to OUT/model.safetensors with its verdict threshold, chosen on the validation videos (threshold_rule) or
fixed (threshold=T), ready for `fakescope scan --weights`. data.validation=false trains on every video with no
validation loop (needs threshold=T). OUT/train_summary.json has the validation figures and each validation video's
score. TensorBoard logs: OUT/tensorboard.

Several GPUs or machines: the same config with trainer.devices=N trainer.strategy=ddp (and trainer.num_nodes=M,
launched on each machine by torchrun or SLURM, which set the rank variables Lightning reads).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train the detector from a config file",
                                 description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="SECTION.KEY=VALUE",
                        help="override config values, e.g. trainer.max_epochs=3")
    parser.add_argument("--resume", metavar="CKPT", help="resume from a Lightning checkpoint, or 'last'")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..training import TrainConfig, train
    from .exit_codes import EXIT_OK, UsageError

    if args.config is not None and not args.config.is_file():
        raise UsageError(f"config file not found: {args.config}")
    try:
        config = TrainConfig.load(args.config, args.overrides)
    except (ValueError, TypeError, yaml.YAMLError) as error:
        raise UsageError(str(error)) from error
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return EXIT_OK
    if not config.data.train:
        raise UsageError("no training data: set data.train in the config (a list of dataset specs)")
    try:
        result = train(config, resume=args.resume, progress=not args.quiet)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    if result.exported is not None:
        auc = "n/a" if result.best_val_auc is None else f"{result.best_val_auc:.4f}"
        print(f"best validation video-level ROC-AUC {auc}; threshold {result.threshold:.3f}; "
              f"exported {result.exported}")
    return EXIT_OK
