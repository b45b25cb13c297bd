"""One model-agnostic trainer, in the spirit of nanoGPT's ``train.py``: it only calls ``model.loss(x)``.

Read it top to bottom: ``_build`` makes the model, the optimizer and the batches; ``fit`` records the
run and calls ``_loop``; the loop takes one ``train_step`` after another, writes a metrics row every
``log_every`` steps, and asks ``at_step`` what else is due (an evaluation with samples and the best
weights, FID, a checkpoint); ``save_checkpoint`` is the one place a checkpoint is written. Progress is
one ``TrainState``, saved with every checkpoint, so a resumed run takes exactly the steps an
uninterrupted one would have taken.

The whole dataset lives on the training device as uint8 (emoji at 64×64 is 49 MB), so a batch is
one index and one cast (``genlab.runs.batches``): no DataLoader workers, no host-to-device copies.

Under ``torchrun`` (``genlab.runs.distributed``) every process runs this same trainer on its slice
of each global batch through ``DistributedDataParallel``; only rank 0 writes the run's files (each rank
leaves only its PID, so that rank 0 can name a peer that died).
"""

from __future__ import annotations

import errno
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..data import ImageData, load_dataset
from ..device import autocast, precision, resolve_device
from ..errors import CheckpointError, ConfigError, DatasetUnavailable, GenlabError, TrainingDiverged
from ..metrics.fid import FID, FIDStats, fid_from_stats
from ..metrics.likelihood import average_metrics
from ..models import model_class
from ..models.base import GenerativeModel
from ..models.sizing import check_model
from . import checkpoint, distributed
from .batches import Batches
from .config import TrainConfig, cadence
from .grids import grids_on_disk, write_grid
from .process import package_versions
from .records import EvalRow, FidRow, MetricRow, RunStatus, TrainRow
from .rundir import RunDir
from .sinks import RunLogs, Sinks
from .state import TrainState, diverged_message, over_budget, rank_seed

DIVERGED_BPD = 16.0  # twice the bits/dim of a uniform guess over 256 values


class _Loss(torch.nn.Module):
    """``model.loss`` as a forward pass, which is what DistributedDataParallel wraps."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.loss(x)


@dataclass
class Step:
    """What one training step did; its three decisions are agreed by every process."""

    metrics: dict  # the model's metrics and the gradient norm, as tensors
    bad: bool  # the loss or the gradients were not finite: no weight changed
    stop: bool  # someone asked the run to stop (a signal or the STOP file)
    time_up: bool  # the run's time budget is spent
    loss: torch.Tensor
    grad_norm: torch.Tensor


class _Window:
    """The training steps since the last metrics row: their summed metrics, counts and duration."""

    def __init__(self):
        self.sums: dict = {}
        self.count = 0  # steps that updated the weights
        self.skipped = 0  # non-finite steps
        self.started = self.ticked = time.perf_counter()

    def tick(self) -> float:
        """Seconds of training since the last tick (evaluations and checkpoints are excluded by ``pause``)."""
        now = time.perf_counter()
        dt, self.ticked = now - self.ticked, now
        return dt

    def pause(self, seconds: float) -> None:
        """``seconds`` of side work (evaluation, FID, a checkpoint) are neither training time nor in images/s."""
        self.started += seconds
        self.ticked += seconds

    def add(self, step: Step) -> None:
        if step.bad:
            self.skipped += 1
            return
        for k, v in step.metrics.items():  # summed as tensors: read back once, when the row is written
            self.sums[k] = self.sums.get(k, 0.0) + (v.detach().float() if torch.is_tensor(v) else v)
        self.count += 1

    def running_s(self) -> float:
        return time.perf_counter() - self.started


class Trainer:
    # built by _build(), once the run directory is locked: the data, the weights and how they train
    data: ImageData
    test_x: torch.Tensor  # uint8 [N, C, S, S], resident on the device
    batches: Batches
    model: GenerativeModel  # the training weights
    ema: AveragedModel | None  # their moving average (--ema), evaluated, sampled and saved in their place
    step_loss: torch.nn.Module  # model.loss as one forward pass: wrapped by DDP under torchrun, compiled on request
    opt: torch.optim.Optimizer
    fid: FID | None
    fid_ref: FIDStats | None
    total_steps: int
    eval_every: int
    ckpt_every: int

    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: bool = False):
        self.cfg = config
        self.run = RunDir(run_dir)
        self.resume = resume
        self.world = distributed.world_from_env()
        self.device = torch.device("cpu")  # resolved by _build, where a bad --device is recorded in run.json
        self.stop_requested = False  # set by SIGTERM or SIGINT
        self.setup_side_s = 0.0  # seconds of FID reference statistics before the first step
        self.last_checkpoint: int | None = None  # the step of the last checkpoint written (or resumed from)
        self.warned = False  # the run has been said to diverge
        self.sinks = Sinks((), RunLogs(self.run.path, self.run.path.name, {}), self._tracker_failed)  # --log: rank 0

    # -- setup -----------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, world = self.cfg, self.world
        if cfg.batch_size % world.size:
            raise GenlabError(
                f"--batch-size is the global batch and must divide evenly over the {world.size} "
                f"processes; {cfg.batch_size} does not"
            )
        self.device = distributed.setup(world, resolve_device(cfg.device))
        self.data = load_dataset(cfg.dataset, cfg.image_size)
        self.test_x = self.data.test.to(self.device)
        self._build_model()
        self.batches = Batches(
            self.data.train.to(self.device), cfg.batch_size, cfg.seed, world, cfg.hflip, self.memory_format
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.fid, self.fid_ref = None, None
        if cfg.fid_every:
            self.fid = FID(device=str(self.device))
            t_ref = time.perf_counter()
            self.fid_ref = self.fid.stats_of_dataset(cfg.dataset, "train", cfg.image_size, cfg.fid_ref_n)
            self.setup_side_s = time.perf_counter() - t_ref  # counted in a public run's budget (cached later)
        self.total_steps = cfg.total_steps(self.batches.steps_per_epoch)
        self.eval_every = cfg.eval_every or cadence(self.total_steps)
        self.ckpt_every = cfg.checkpoint_every or self.eval_every

    def _build_model(self) -> None:
        cfg, world = self.cfg, self.world
        mcls = model_class(cfg.model)
        mconf = mcls.config_class(**{**cfg.model_config, "image_size": cfg.image_size, "channels": self.data.channels})
        check_model(mcls, mconf, batch=cfg.batch_size // world.size, training=True, what=f"this {cfg.model}")
        torch.manual_seed(cfg.seed)
        self.model = mcls(mconf).to(self.device)
        self.memory_format = torch.channels_last if self.model.prefers_channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # Polyak averaging: a copy taken before DDP wraps the model; its BatchNorm buffers are averaged like the weights
        self.ema = None
        if cfg.ema:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            self.ema.n_averaged.fill_(1)  # it starts as a copy: average from the first step on, never re-copy
        self.step_loss = _Loss(self.model)
        if world.distributed:
            if self.device.type == "cuda":  # batch statistics over the global batch, as in one process
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
                self.step_loss = _Loss(self.model)
            # (SyncBatchNorm is CUDA-only: on CPU each process normalises over its own slice of the batch)
            ids = [self.device] if self.device.type == "cuda" else None
            self.step_loss = torch.nn.parallel.DistributedDataParallel(self.step_loss, device_ids=ids)
        if cfg.compile:
            self.step_loss = torch.compile(self.step_loss)

    @property
    def net(self) -> GenerativeModel:
        """The model that is evaluated, sampled and saved: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _install_signal_handlers(self) -> dict:
        """SIGTERM and SIGINT ask the run to stop (a checkpoint, then exit); the handlers they replace are returned."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            self.stop_requested = True

        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def _autocast(self):
        return autocast(self.device, self.cfg.amp)

    # -- starting and ending a run ---------------------------------------------------------
    def fit(self) -> RunStatus:
        """Train until done or stopped; return the final status. Never raises for a training failure."""
        lock = self.run.acquire_lock() if self.world.main else None
        previous = self._install_signal_handlers()
        try:
            return self._fit()
        finally:
            for s, handler in previous.items():  # a caller that goes on (genlab checkpoints) gets Ctrl-C back
                signal.signal(s, handler)
            self.sinks.close()
            distributed.teardown(self.world)
            if lock is not None:
                lock.release()

    def _fit(self) -> RunStatus:
        try:
            self._build()
        except Exception as e:
            return self._failed_to_build(e)
        state = TrainState()
        if self.resume:
            if self.world.main:  # finish or undo a swap a crash interrupted, once, before any rank reads it
                checkpoint.recover(self.run.path)
            distributed.barrier(self.world)
            try:
                state = TrainState.from_json(
                    checkpoint.load(self.run.path, self.model, self.opt, ema=self.ema.module if self.ema else None)
                )
            except CheckpointError as e:  # said in run.json too: the app's Resume runs in another process
                return self._fail(str(e))
            self.last_checkpoint = state.step
        if self.world.rank > 0:  # rank 0 keeps the checkpoint's random stream; the others draw their own noise
            torch.manual_seed(rank_seed(self.cfg.seed, self.world.rank, state.step))
        distributed.record_pid(self.run.path, self.world)
        if self.world.main:
            self._record_start(state)
        status = self._train(state)
        if status != RunStatus.FAILED and self.world.main:
            try:  # a spent time budget shortens the run: the plan becomes the steps actually taken
                self.run.update_info(status=status, error=None, total_steps=self.total_steps)
            except OSError as e:
                print(f"warning: could not record status '{status}': {e}", file=sys.stderr)
        return status

    def _failed_to_build(self, e: Exception) -> RunStatus:
        if not isinstance(e, GenlabError):
            traceback.print_exc()  # a bug, or the machine: train.log keeps where it happened
        if self.world.main:
            self.run.path.mkdir(parents=True, exist_ok=True)
            error = str(e) if isinstance(e, GenlabError) else f"{type(e).__name__}: {e}"
            # a missing data set or a bad option fails the same way on every resume
            self.run.update_info(
                status=RunStatus.FAILED,
                error=error,
                config=self.cfg,
                resumable=not isinstance(e, (ConfigError, DatasetUnavailable)),
            )
        print(f"error: {e}", file=sys.stderr)
        return RunStatus.FAILED

    def _record_start(self, state: TrainState) -> None:
        """run.json says the run is training, with everything needed to reproduce it."""
        cfg, run = self.cfg, self.run
        run.ensure_reserve()
        if self.resume:
            checkpoint.drop_best_after(run.path, state.step)
            state.best_bpd = best[1] if (best := run.best()) else None
            run.truncate_metrics(state.step)
            run.clear_stop()
        else:  # a fresh start (or a restart of an attempt killed before its first checkpoint)
            checkpoint.drop_best_after(run.path, 0)
            run.samples.mkdir(parents=True, exist_ok=True)
        run.update_info(
            status=RunStatus.RUNNING,
            error=None,
            resumable=None,
            warning=None,
            pid=os.getpid(),
            config=cfg,
            processes=self.world.size,
            dataset={
                "name": cfg.dataset,
                "train": len(self.batches.images),
                "test": len(self.test_x),
                "credit": self.data.credit,
                "skipped": self.data.skipped,
            },
            seed=cfg.seed,
            versions=package_versions(),
            device=str(self.device),
            threads=torch.get_num_threads(),
            precision=precision(self.device, cfg.amp),
            total_steps=self.total_steps,
            steps_per_epoch=self.batches.steps_per_epoch,
            num_parameters=self.model.num_parameters(),
            **({} if self.resume else {"created_at": time.time()}),
        )
        self._open_trackers(state)

    def _open_trackers(self, state: TrainState) -> None:
        """Start the trackers of ``--log`` (rank 0), and say in run.json where their logs are."""
        if not self.cfg.log:
            return
        info = self.run.info()
        logs = RunLogs(self.run.path, self.run.path.name, self.cfg.to_dict(), info.created_at, state.step)
        self.sinks = Sinks(tuple(self.cfg.log.split(",")), logs, self._tracker_failed)
        found = {n: {"where": w, "error": None} for n, w in self.sinks.where.items()}
        self.run.update_info(trackers={**(self.run.info().trackers or {}), **found})
        if state.step and self.sinks.open:  # what a killed attempt's trackers lost, or all of it for a new one
            self.sinks.catch_up(self.run.read_metrics(), grids_on_disk(self.run.path, state.step), state.step)

    def _tracker_failed(self, name: str, what: str) -> None:
        """A tracker failed (once): said in the run's log and in run.json; the run goes on."""
        to = name if name == "trackio" else f"{name} DIR"
        sentence = (
            f"{what}; the run goes on without it and metrics.jsonl keeps every row: "
            f"python -m genlab export-logs {self.run.path} --to {to} replays it"
        )
        print(f"warning: {sentence}", file=sys.stderr)
        try:
            trackers = self.run.info().trackers or {}
            self.run.update_info(trackers={**trackers, name: {**trackers.get(name, {}), "error": sentence}})
        except OSError:
            pass  # a full disk: the sentence is in the log, and the run's own files come first

    def _train(self, state: TrainState) -> RunStatus:
        """The loop, with every failure turned into a status and a sentence (written by rank 0)."""
        try:
            return self._loop(state)
        except TrainingDiverged as e:
            return self._fail(str(e))
        except OSError as e:
            full = e.errno == errno.ENOSPC
            return self._fail(_disk_full_message(e) if full else f"{type(e).__name__}: {e}")
        except Exception as e:
            if self.world.distributed:  # a peer that died breaks the next collective operation
                return self._fail(self._peer_failure(state, e))
            traceback.print_exc()
            return self._fail(f"{type(e).__name__}: {e}")

    # -- the loop --------------------------------------------------------------------------
    def _loop(self, state: TrainState) -> RunStatus:
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            disable=None if self.world.main else True,
            dynamic_ncols=True,
            desc=self.cfg.model,
        )
        window = _Window()
        state.side_elapsed += self.setup_side_s
        self.model.train()
        while state.step < self.total_steps:
            step = self.train_step(state, window)
            if step.bad:
                state.nonfinite_total += 1
                state.consecutive_bad += 1
                if state.consecutive_bad >= self.cfg.max_nonfinite:
                    raise TrainingDiverged(self._diverged(state, step))
            else:
                state.consecutive_bad = 0
            window.add(step)
            state.step += 1
            state.elapsed += window.tick()  # training time so far: what a checkpoint at any step records
            bar.update(1)
            if step.time_up:
                self.total_steps = state.step  # the budget is spent: this step is the last one
            if self._due(state.step, self.cfg.log_every):
                row = self.log_row(state, window)
                bar.set_postfix({k: f"{v:.3f}" for k in ("loss", "bpd") if (v := row.value(k)) is not None})
                window = _Window()
            t_side = time.perf_counter()
            self.at_step(state, skip_fid=step.time_up and self.cfg.side_work_counts)
            side = time.perf_counter() - t_side
            window.pause(side)
            state.side_elapsed += side
            if step.stop and state.step < self.total_steps:
                if self.last_checkpoint != state.step:
                    self.save_checkpoint(state)
                break
        bar.close()
        distributed.barrier(self.world)  # nobody leaves while rank 0 still writes
        return RunStatus.FINISHED if state.step >= self.total_steps else RunStatus.STOPPED

    def train_step(self, state: TrainState, window: _Window) -> Step:
        """One optimizer step on batch ``state.step``; skipped (no weight changes) when any process saw a
        non-finite loss or gradient. Every process takes the same decisions at the same step."""
        lr = self.cfg.lr_at(state.step, self.total_steps)  # also what a resume with a new --lr or schedule changes
        for group in self.opt.param_groups:
            group["lr"] = lr
        x = self.batches(state.step)
        with self._autocast():
            loss, metrics = self.step_loss(x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients arrive averaged over all processes
        loss = loss.detach()
        clip = self.cfg.grad_clip if self.cfg.grad_clip else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        stop = self.stop_requested or (self.world.main and self.run.stop_file.exists())
        bad = not (torch.isfinite(loss) and torch.isfinite(grad_norm))
        time_up = over_budget(self.cfg, state, time.perf_counter() - window.ticked)
        if self.world.distributed:
            stop, bad, time_up = map(bool, distributed.all_max(self.world, [stop, bad, time_up], self.device))
        if not bad:
            self.opt.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
        return Step({**metrics, "grad_norm": grad_norm}, bad, stop, time_up, loss, grad_norm)

    def _due(self, step: int, every: int | None) -> bool:
        return (bool(every) and step % every == 0) or step == self.total_steps

    def at_step(self, state: TrainState, skip_fid: bool = False) -> None:
        """Everything a step may be due for, in one place: an evaluation (with sample grids and the best
        weights), FID, and a checkpoint. ``skip_fid``: a public run whose budget is spent skips its last FID
        (an FID of 1,000 samples takes minutes on a CPU)."""
        if self._due(state.step, self.eval_every):
            test = self.evaluate()  # every process evaluates its share
            if self.world.main:
                self._record(EvalRow(**self._when(state), metrics=test))
                self.save_samples(state.step)
                self.keep_if_best(state, test)
        # FID on all K samples, by rank 0 (the others wait at the next step's reduction)
        if self.fid is not None and self.world.main and self._due(state.step, self.cfg.fid_every) and not skip_fid:
            self._record(FidRow(**self._when(state), **self.measure_fid()))
        # during a streak of non-finite steps the last checkpoint stays the last good one
        if self._due(state.step, self.ckpt_every) and state.consecutive_bad == 0:
            self.save_checkpoint(state)

    def save_checkpoint(self, state: TrainState) -> None:
        """The one place a checkpoint is written: weights, optimizer, random state and ``state``."""
        if self.world.main:
            ema = self.ema.module if self.ema is not None else None
            try:
                checkpoint.save(self.run.path, self.model, self.opt, state.to_json(), ema=ema)
            except FloatingPointError as e:  # e.g. BatchNorm statistics that overflowed in a skipped step
                kept = self.last_checkpoint
                where = f"the last good checkpoint (step {kept}) is untouched" if kept is not None else "none was kept"
                raise TrainingDiverged(
                    f"step {state.step}: {e}; the learning rate ({self.cfg.lr:g}) is probably too high for this "
                    f"model: lower --lr or set --grad-clip. The checkpoint was not written; {where}."
                ) from None
            self.sinks.flush()  # the trackers hold every step up to a checkpoint: a resume continues after it
        self.last_checkpoint = state.step

    # -- metrics rows ----------------------------------------------------------------------
    def _when(self, state: TrainState) -> dict:
        """The fields every metrics row starts with."""
        return {
            "step": state.step,
            "epoch": state.epoch(self.batches.steps_per_epoch),
            "time": round(state.elapsed, 3),
            "timestamp": time.time(),
        }

    def log_row(self, state: TrainState, window: _Window) -> TrainRow:
        """The mean metrics of the steps since the last row (over all processes), written by rank 0."""
        dt = window.running_s()
        done = window.count + window.skipped
        row = TrainRow(
            **self._when(state),
            images_per_s=round(done * min(self.cfg.batch_size, len(self.batches.images)) / max(dt, 1e-9), 2),
            lr=self.opt.param_groups[0]["lr"],
            skipped_steps=window.skipped,
            metrics=self._mean_over_processes(window.sums, window.count),
        )
        if self.world.main:
            self._record(row)
            self._warn_if_diverging(row)
        return row

    def _record(self, row: MetricRow) -> None:
        """A metrics row, in metrics.jsonl (the record) and then in each tracker of --log."""
        self.run.append_metrics(row)
        self.sinks.row(row)

    def _mean_over_processes(self, sums: dict, count: int) -> dict[str, float]:
        """Per-step means of the logged metrics, over the steps since the last row and over all processes."""
        if not count:
            return {}
        keys = sorted(sums)
        vals = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32, device=self.device) for k in keys])
        vals = distributed.all_sum(self.world, vals) / self.world.size
        return {k: float(v) / count for k, v in zip(keys, vals.tolist())}

    # -- evaluation, FID, samples and the best weights -------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Test metrics over the (capped) test split; under torchrun each process takes every N-th image
        and the image-weighted means are reduced over all of them."""
        bs, world = self.cfg.batch_size, self.world
        images = self.test_x[: self.cfg.eval_batches * bs] if self.cfg.eval_batches else self.test_x
        mine = images[world.rank :: world.size]
        m = average_metrics(
            self.net, mine, self.batches.local_batch, autocast=self._autocast(), memory_format=self.memory_format
        )
        if world.distributed:
            keys = sorted(m)
            sums = distributed.all_sum(
                world, torch.tensor([m[k] * len(mine) for k in keys], dtype=torch.float64, device=self.device)
            )
            m = {k: float(v) / len(images) for k, v in zip(keys, sums)}
        return {f"test_{k}": v for k, v in m.items()}

    def measure_fid(self) -> dict:
        t = time.perf_counter()
        st = self.fid.stats_of_model(self.net, self.cfg.fid_samples, seed=self.cfg.seed)
        return {
            "fid": fid_from_stats(st, self.fid_ref),
            "fid_samples": self.cfg.fid_samples,
            "fid_weights": self.fid.source,
            "fid_ref_images": self.fid_ref.n,
            "fid_seconds": round(time.perf_counter() - t, 2),
        }

    def save_samples(self, step: int) -> None:
        g = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        imgs = self.net.sample(self.cfg.sample_n, temperature=1.0, generator=g).float().cpu()
        grids = {"samples": write_grid(self.run.sample_grid(step), imgs, nrow=int(math.ceil(math.sqrt(len(imgs)))))}
        if self.net.reconstructs:
            x = self.test_x[:32].float().div(255.0)
            pairs = torch.stack([x, self.net.reconstruct(x).float()], 1).flatten(0, 1).cpu()  # orig, recon, ...
            grids["reconstructions"] = write_grid(self.run.recon_grid(step), pairs, nrow=16)
        self.sinks.grids(step, grids)

    def keep_if_best(self, state: TrainState, test: dict[str, float]) -> None:
        """Save the evaluated weights as the run's best when their test bits/dim are the lowest so far."""
        bpd = test.get("test_bpd")
        if bpd is None or not math.isfinite(bpd) or (state.best_bpd is not None and bpd >= state.best_bpd):
            return
        checkpoint.save_best(self.run.path, self.net, state.step, bpd, self.cfg.dataset)
        state.best_bpd = bpd

    # -- what a failing run says -----------------------------------------------------------
    def _diverged(self, state: TrainState, step: Step) -> str:
        loss, norm = step.loss.item(), float(step.grad_norm)
        return diverged_message(self.cfg, state.step + 1, state.consecutive_bad, loss, norm, self.last_checkpoint)

    def _warn_if_diverging(self, row: TrainRow) -> None:
        """A loss can blow up without becoming NaN; bits/dim far above 8 (what knowing nothing about the
        pixels costs) means the run is diverging. Said once, in run.json; the run goes on (clipping may
        bring it back)."""
        bpd = row.value("bpd")
        if bpd is not None and bpd > DIVERGED_BPD and not self.warned:
            self.warned = True
            self.run.update_info(
                warning=f"train bits/dim reached {bpd:.3g} at step {row.step}, far worse than uniform noise "
                f"(8 bits/dim): the learning rate ({self.cfg.lr:g}) is probably too high; lower --lr"
            )

    def _peer_failure(self, state: TrainState, e: Exception) -> str:
        time.sleep(0.5)  # let the process that died be seen as gone
        dead = distributed.dead_ranks(self.run.path, self.world)
        who = (
            f"rank {', '.join(map(str, dead))} of {self.world.size} died"
            if dead
            else f"a process of this {self.world.size}-process job failed (on another machine, or see train.log)"
        )
        last = self.last_checkpoint
        kept = f"the last checkpoint (step {last}) is intact" if last is not None else "no checkpoint was written"
        first_line = str(e).splitlines()[0][:200] if str(e) else ""
        return (
            f"{who} at step {state.step}; {kept}. Resume with: python -m genlab train --resume RUN_DIR "
            f"(any number of processes). [{type(e).__name__}: {first_line}]"
        )

    def _fail(self, message: str) -> RunStatus:
        print(f"run failed{f' (rank {self.world.rank})' if self.world.distributed else ''}: {message}", file=sys.stderr)
        if not self.world.main:
            return RunStatus.FAILED
        try:
            self.run.update_info(status=RunStatus.FAILED, error=message)
        except OSError:  # a full disk: give back the space held for this moment, and try once more
            self.run.release_reserve()
            try:
                self.run.update_info(status=RunStatus.FAILED, error=message)
            except OSError:
                pass  # the message is on stderr
        return RunStatus.FAILED


def _disk_full_message(e: OSError) -> str:
    return (
        f"the disk is full while writing the run directory ({e.strerror}); the previous checkpoint is intact. "
        f"Free some space and resume with: python -m genlab train --resume RUN_DIR"
    )
