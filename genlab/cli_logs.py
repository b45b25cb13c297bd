"""``genlab export-logs``: an existing run, or a model folder that carries its run's metrics, replayed into
TensorBoard, W&B or trackio (the work is in ``genlab.runs.replay``).

genlab export-logs runs/vae-emoji-20261201-120000 --to tensorboard tb-logs
genlab export-logs checkpoints/realnvp-mnist-32 --to tensorboard tb-logs   # then: tensorboard --logdir tb-logs
"""

from __future__ import annotations

from .errors import ConfigError
from .runs.replay import export_logs
from .runs.sinks import SINKS


def add_log_commands(sub) -> None:
    e = sub.add_parser(
        "export-logs",
        help="replay a run's metrics, grids and config into a tracker (tensorboard, wandb or trackio)",
    )
    e.add_argument("run", help="a run directory, or a model folder with its metrics.jsonl (a shipped checkpoint)")
    e.add_argument(
        "--to",
        required=True,
        nargs="+",
        metavar=("TRACKER", "DIR"),
        help=f"the tracker ({', '.join(SINKS)}), then where its files go: tensorboard writes DIR/<run name>, wandb "
        "an offline run under DIR/wandb; trackio takes no DIR (it writes its own store, TRACKIO_DIR)",
    )


def _export_logs(args) -> int:
    if len(args.to) > 2:
        raise ConfigError(f"--to takes a tracker and at most one folder; got {' '.join(args.to)}")
    to, dest = args.to[0], (args.to[1] if len(args.to) == 2 else None)
    where = export_logs(args.run, to, dest)
    print(f"{args.run} -> {to}: {where}")
    return 0


COMMANDS = {"export-logs": _export_logs}
