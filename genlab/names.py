"""Every file and folder name genlab writes, defined once.

A model folder (``save_pretrained``, ``genlab export``, a Hub repo)::

    config.json  model.safetensors  metrics.json  samples.png  README.md  [ood/ sweep/]

A run directory (``genlab.runs.rundir``)::

    run.json  metrics.jsonl  checkpoint/  best/  samples/  STOP  .lock  .reserve  train.log  .ranks/
"""

# -- a model folder ----------------------------------------------------------------------------------------
CONFIG = "config.json"  # the model's family and config
WEIGHTS = "model.safetensors"  # its weights (safetensors only: nothing is ever unpickled)
METRICS = "metrics.json"  # its card's figures: bits/dim, FID, how it was trained
SAMPLES = "samples.png"  # the card's grid
CARD = "README.md"  # the model card
OOD = "ood"  # per-image bits/dim and PNG sizes on several data sets, by model digest (genlab ood --ship)
SWEEP = "sweep"  # FID, KID and precision/recall at each temperature, by model digest (genlab sweep --ship)

# -- a run directory ---------------------------------------------------------------------------------------
RUN_INFO = "run.json"  # config, status, error, versions: genlab.runs.records.RunInfo
RUN_METRICS = "metrics.jsonl"  # one row per logged step, evaluation and FID
CHECKPOINT = "checkpoint"  # a model folder, plus the optimizer and the trainer's state
CHECKPOINT_NEW, CHECKPOINT_OLD = "checkpoint.new", "checkpoint.old"  # the two sides of a checkpoint swap
BEST, BEST_NEW = "best", "best.new"  # the weights with the lowest test bits/dim, a model folder
TRAINER_STATE = "trainer_state.json"  # written last in a checkpoint: its presence marks a complete one
OPTIMIZER = "optimizer.safetensors"  # the optimizer, the training weights (under an EMA) and the random state
RUN_SAMPLES = "samples"  # the grids, step-0000500.png and recon-0000500.png
STOP = "STOP"  # created by anyone who wants the run to stop
LOCK = ".lock"  # held (flock) by the process training the run
RESERVE = ".reserve"  # a little disk held back, so that a run stopped by a full disk can still say why
LOG = "train.log"  # the output of a launched run's process
SLOTS = ".slots"  # in a runs folder: the queue's slot files
RANKS = ".ranks"  # under torchrun: each rank's host and PID (genlab.runs.distributed)
