"""``ferlite train`` / ``ferlite-train``."""

from __future__ import annotations

import shlex
import sys

import click

from ferlite.cli._once import OnceCommand
from ferlite.labels import TARGET_MODES
from ferlite.training.augment import PRESETS
from ferlite.training.distribute import STRATEGIES
from ferlite.training.loop import LOSSES, OPTIMIZERS, SCHEDULES


def _command_line() -> str:
    """The command as the user typed it, normalised to ``ferlite-train ...``."""
    args = sys.argv[1:]
    if args[:1] == ["train"] and not sys.argv[0].endswith("ferlite-train"):
        args = args[1:]
    return shlex.join(["ferlite-train", *args])


def _model_list(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--teacher A,B --teacher C`` as ``("A", "B", "C")``; an empty name is a usage error."""
    names = tuple(name.strip() for given in value for name in given.split(","))
    if any(not name for name in names):
        raise click.BadParameter(f"expected MODEL[,MODEL...] (registered names or .keras files), got "
                                 f"{','.join(value)!r}, which holds an empty name", ctx=ctx, param=param)
    return names


@click.command(cls=OnceCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--train", "train_dir", required=True, type=click.Path(exists=True),
              help="FER+ training split folder (label.csv + PNGs), or a generic dataset CSV (image,<classes...>).")
@click.option("--val", "val_dir", required=True, type=click.Path(exists=True),
              help="FER+ validation split folder or dataset CSV, used for model selection.")
@click.option("--model", default="mobilefacenet", show_default=True, help="Architecture (see ferlite.list_models()).")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Width multiplier.")
@click.option("--img-size", type=click.IntRange(min=16), default=48, show_default=True,
              help="Input side in pixels (multiple of 16).")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="Model input channels (gray faces are repeated to 3).")
@click.option("--target-mode", type=click.Choice(TARGET_MODES), default="seed9", show_default=True,
              help="How votes become targets.")
@click.option("--num-classes", type=click.Choice(["8", "9"]), default=None,
              help="8 emotions or 8 + unknown (default: 9 for seed9, 8 for the paper schemes).")
@click.option("--loss", type=click.Choice(LOSSES), default="crossentropy", show_default=True,
              help="crossentropy on the vote distribution; bce as the reference did.")
@click.option("--label-smoothing", type=click.FloatRange(min=0, max=1, max_open=True), default=0.0, show_default=True)
@click.option("--opt", type=click.Choice(OPTIMIZERS), default="adamw", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True,
              help="Peak learning rate.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-3, show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True,
              help="cosine decay with warmup, or halve on a val-MAE plateau.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Global batch; at most the number of training faces.")
@click.option("--aug", type=click.Choice(list(PRESETS)), default="light",
              show_default=True, help="Augmentation preset.")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1), default=0, show_default=True)
@click.option("--patience", type=click.IntRange(min=0), default=0, show_default=True,
              help="Early stopping after this many epochs without a better val MAE (0: off).")
@click.option("--output-dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: checkpoints/<model>_<alpha>_<timestamp>).")
@click.option("--init-weights", default=None,
              help="Checkpoint path or registered name ('default': the default pretrained model) to transfer weights "
              "from; layers matched by name and shape, a different class set gets a new head.")
@click.option("--freeze-backbone", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train only the head for this many epochs, then unfreeze everything.")
@click.option("--resume", is_flag=True, help="Continue the run in --output-dir from its last checkpoint.")
@click.option("--skip-bad", is_flag=True,
              help="Skip unreadable images and malformed rows (counted) instead of stopping.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="tf.distribute strategy: auto (mirrored over GPUs when more than one, else default), default, "
                   "mirrored (all GPUs, or all logical CPUs), multiworker (configured by TF_CONFIG).")
@click.option("--scale-lr", is_flag=True,
              help="Apply the linear scaling rule: peak lr = --lr x --batch-size / 128 (--batch-size is the global "
                   "batch).")
@click.option("--ema", default=0.0, show_default=True, metavar="DECAY",
              help="Keep an exponential moving average of the weights (e.g. 0.999; 0 = off), updated every step; "
                   "the averaged weights are scored each epoch (ema_val_* in history.csv), select the best models "
                   "and become model.keras.")
@click.option("--teacher", multiple=True, callback=_model_list, metavar="MODEL[,MODEL...]",
              help="Distil from these frozen models (registered names or .keras files; several are averaged): the "
                   "target becomes (1 - W) x the vote distribution + W x the teachers' distribution, computed on "
                   "each augmented batch. Teachers must predict the student's classes from the same input.")
@click.option("--teacher-flip", is_flag=True,
              help="Average each teacher's prediction with its prediction on the mirrored face.")
@click.option("--distill-weight", type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True,
              metavar="W", help="Weight W of the teachers' distribution in the target (with --teacher).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              metavar="T", help="Teachers' distribution p**(1/T), renormalised: T > 1 softens, T < 1 sharpens "
                                "(with --teacher).")
@click.option("--quant-noise", is_flag=True,
              help="Noise-aware training for int8 export: uniform noise of one int8 step on the output of every "
                   "batch normalisation and activation, in training only (ferlite.training.quantnoise).")
@click.option("--fake-quant", is_flag=True,
              help="Quantization-aware training for int8 export: the output of every batch normalisation and "
                   "activation rounded, in training only, to 256 levels of a moving-average range, the gradient "
                   "passed straight through (ferlite.training.quantnoise). Not with --quant-noise.")
@click.option("--class-balance", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="POWER",
              help="Class-balanced loss: each face's loss weighted by sum_c target_c x prior_c ** -POWER (prior: the "
                   "mean training target; 1 = inverse class frequency, 0 = off), mean weight 1.")
@click.option("--keep-epochs", is_flag=True,
              help="Keep every epoch's model as epoch_NNN.keras (the weight average with --ema), to select an "
                   "epoch on other data afterwards.")
def train_cmd(train_dir, val_dir, channels, num_classes, **opts) -> None:
    """Train on soft labels (FER+ folders or a generic CSV): checkpoints, history, curves, final model + sidecar."""
    from ferlite.training.loop import TrainConfig, train

    cfg = TrainConfig(train=train_dir, val=val_dir, channels=int(channels),
                      num_classes=int(num_classes) if num_classes else None, **opts)
    try:
        train(cfg, command=_command_line(), log=click.echo)
    except (ValueError, OSError) as exc:  # DataError is a ValueError; an unwritable run folder an OSError
        raise click.ClickException(str(exc)) from exc
