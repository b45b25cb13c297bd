"""One model-agnostic trainer, in the spirit of minGPT's: it only calls ``model.loss(x)``.

The whole dataset lives on the training device as uint8 (emoji at 64×64 is 49 MB), so a
batch is one index and one cast: no DataLoader workers, no host-to-device copies per
step. The epoch order is a permutation seeded by (seed, epoch), and the RNG state
travels in the checkpoint, so a resumed run takes exactly the steps an uninterrupted one
would have taken.

Under ``torchrun`` (``genlab.runs.distributed``) every process runs this same trainer on its slice
of each global batch through ``DistributedDataParallel``; only rank 0 writes the run directory.
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
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import DatasetUnavailable, load_dataset
from ..device import autocast, precision, resolve_device
from ..errors import ConfigError, TrainingDiverged
from ..metrics.likelihood import average_metrics
from ..models import CheckpointError, model_class
from ..models.sizing import check_model
from . import distributed
from .config import TrainConfig, cadence
from .grids import write_grid
from .records import EvalRow, FidRow, RunStatus, TrainRow
from .rundir import RunDir, package_versions

DIVERGED_BPD = 16.0  # twice the bits/dim of a uniform guess over 256 values


def _disk_full_message(e: OSError, what: str) -> str:
    return (
        f"the disk is full while writing {what} ({e.strerror}); the previous checkpoint is intact. "
        f"Free some space and resume with: python -m genlab train --resume RUN_DIR"
    )


class _Loss(torch.nn.Module):
    """``model.loss`` as a forward pass, which is what DistributedDataParallel wraps."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.loss(x)


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: bool = False):
        self.cfg = config
        self.run = RunDir(run_dir)
        self.resume = resume
        self.stop_requested = False
        self.world = distributed.world_from_env()
        self.device = resolve_device(config.device)
        self.setup_side_s = 0.0  # seconds of FID reference statistics before the first step

    # -- setup -----------------------------------------------------------------------------
    def _build(self):
        cfg, world = self.cfg, self.world
        if cfg.batch_size % world.size:
            raise ValueError(
                f"--batch-size is the global batch and must divide evenly over the {world.size} "
                f"processes; {cfg.batch_size} does not"
            )
        self.device = distributed.setup(world, self.device)
        data = load_dataset(cfg.dataset, cfg.image_size)
        self.data = data
        self.train_x = data.train.to(self.device)  # uint8 [N, C, S, S], resident on the device
        self.test_x = data.test.to(self.device)
        mcls = model_class(cfg.model)
        mconf = mcls.config_class(**{**cfg.model_config, "image_size": cfg.image_size, "channels": data.channels})
        check_model(mcls, mconf, batch=cfg.batch_size // world.size, training=True, what=f"this {cfg.model}")
        torch.manual_seed(cfg.seed)
        self.model = mcls(mconf).to(self.device)
        self.memory_format = torch.channels_last if self.model.prefers_channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        # the moving average of the weights (Polyak averaging): evaluated, sampled and saved in their place (a copy
        # taken before DDP wraps the model; its BatchNorm buffers are averaged like the weights)
        self.ema = None
        if cfg.ema:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            self.ema.n_averaged.fill_(1)  # it starts as a copy: average from the first step on, never re-copy
        self.ddp = None
        if world.distributed:
            if self.device.type == "cuda":  # batch statistics over the global batch, as in one process
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            # (SyncBatchNorm is CUDA-only: on CPU each process normalises over its own slice of the batch)
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                _Loss(self.model), device_ids=[self.device] if self.device.type == "cuda" else None
            )
        self.local_batch = cfg.batch_size // world.size
        # the training step: DDP around model.loss under torchrun, compiled on request
        self.step_loss = self.ddp if self.ddp is not None else _Loss(self.model)
        if cfg.compile:
            self.step_loss = torch.compile(self.step_loss)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.fid = None
        if cfg.fid_every:
            from ..metrics.fid import FID

            self.fid = FID(device=str(self.device))
            t_ref = time.perf_counter()
            self.fid_ref = self.fid.stats_of_dataset(cfg.dataset, "train", cfg.image_size, cfg.fid_ref_n)
            self.setup_side_s = time.perf_counter() - t_ref  # counted in a public run's budget (cached later)
        self.steps_per_epoch = max(1, len(self.train_x) // cfg.batch_size)
        self.images_per_step = min(cfg.batch_size, len(self.train_x))  # a batch never holds more than the data
        self.total_steps = cfg.total_steps(self.steps_per_epoch)
        self.eval_every = cfg.eval_every or cadence(self.total_steps)
        self.ckpt_every = cfg.checkpoint_every or self.eval_every

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            self.stop_requested = True

        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, handler)

    def _batch(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if i == 0 or self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.train_x), generator=g).to(self.device)
            self._perm_epoch = epoch
        idx = self._perm[i * self.cfg.batch_size : (i + 1) * self.cfg.batch_size]  # the global batch
        mine = slice(self.world.rank * self.local_batch, (self.world.rank + 1) * self.local_batch)
        x = self.train_x[idx[mine]].float().div_(255.0)  # [B / processes, C, S, S] in [0, 1]
        if self.cfg.hflip:
            # drawn for the global batch from (seed, step) alone: a resumed run, and any number of
            # processes, flip exactly the images an uninterrupted single process would have flipped
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step + (1 << 40))
            flip = (torch.rand(len(idx), generator=g) < 0.5)[mine].to(self.device)  # [B / processes]
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.contiguous(memory_format=self.memory_format)

    def _autocast(self):
        return autocast(self.device, self.cfg.amp)

    # -- evaluation and samples ------------------------------------------------------------
    @property
    def averaged(self):
        """The moving average of the weights, as a model; None without ``--ema``."""
        return self.ema.module if self.ema is not None else None

    @property
    def net(self):
        """The model that is evaluated, sampled and saved: the moving average when there is one."""
        return self.averaged if self.ema is not None else self.model

    def evaluate(self) -> dict[str, float]:
        """Test metrics over the (capped) test split; under torchrun each process takes every N-th image
        and the image-weighted means are reduced over all of them."""
        bs, world = self.cfg.batch_size, self.world
        images = self.test_x[: self.cfg.eval_batches * bs] if self.cfg.eval_batches else self.test_x
        mine = images[world.rank :: world.size]
        m = average_metrics(
            self.net, mine, self.local_batch, autocast=self._autocast(), memory_format=self.memory_format
        )
        if world.distributed:
            keys = sorted(m)
            sums = distributed.all_sum(
                world, torch.tensor([m[k] * len(mine) for k in keys], dtype=torch.float64, device=self.device)
            )
            m = {k: float(v) / len(images) for k, v in zip(keys, sums)}
        return {f"test_{k}": v for k, v in m.items()}

    def measure_fid(self) -> dict:
        from ..metrics.fid import fid_from_stats

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
        write_grid(self.run.sample_grid(step), imgs, nrow=int(math.ceil(math.sqrt(len(imgs)))))
        if self.net.reconstructs:
            x = self.test_x[:32].float().div(255.0)
            pairs = torch.stack([x, self.net.reconstruct(x).float()], 1).flatten(0, 1).cpu()  # orig, recon, ...
            write_grid(self.run.recon_grid(step), pairs, nrow=16)

    def keep_if_best(self, step: int, test: dict[str, float]) -> None:
        """Save the evaluated weights as the run's best when their test bits/dim are the lowest so far."""
        bpd = test.get("test_bpd")
        if bpd is None or not math.isfinite(bpd) or (self.best_bpd is not None and bpd >= self.best_bpd):
            return
        self.run.save_best(self.net, step, bpd, self.cfg.dataset)
        self.best_bpd = bpd

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> RunStatus:
        """Train until done or stopped; return the final status. Never raises for a training failure."""
        lock = self.run.acquire_lock() if self.world.main else None
        try:
            return self._fit()
        finally:
            distributed.teardown(self.world)
            if lock is not None:
                lock.release()

    def _fit(self) -> RunStatus:
        cfg, run = self.cfg, self.run
        try:
            self._build()
        except Exception as e:
            if self.world.main:
                run.path.mkdir(parents=True, exist_ok=True)
                # a missing data set or a bad option fails the same way on every resume
                fixable = not isinstance(e, (DatasetUnavailable, ConfigError))
                error = str(e) if not fixable else f"{type(e).__name__}: {e}"
                run.update_info(status=RunStatus.FAILED, error=error, config=cfg, resumable=fixable)
            print(f"error: {e}", file=sys.stderr)
            return RunStatus.FAILED
        state = {"step": 0, "elapsed": 0.0, "nonfinite_total": 0}
        if self.resume:
            try:
                state = run.load_checkpoint(self.model, self.opt, ema=self.averaged)
            except CheckpointError as e:  # said in run.json too: the app's Resume runs in another process
                return self._fail(str(e))
        if self.world.rank > 0:  # rank 0 keeps the checkpoint's random stream; the others draw their own noise
            torch.manual_seed(cfg.seed * 1_000_003 + 7919 * self.world.rank + state["step"])
        distributed.record_pid(run.path, self.world)
        self._perm_epoch = -1
        self.best_bpd = None
        self._last_ckpt = f"step {state['step']}" if self.resume else None
        self._install_signal_handlers()
        if not self.world.main:
            return self._train(state)
        run.ensure_reserve()
        if self.resume:
            run.drop_best_after(state["step"])
            self.best_bpd = best[1] if (best := run.best()) else None
            run.truncate_metrics(state["step"])
            run.clear_stop()
        else:
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
                "train": len(self.train_x),
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
            steps_per_epoch=self.steps_per_epoch,
            num_parameters=self.model.num_parameters(),
            **({} if self.resume else {"created_at": time.time()}),
        )
        status = self._train(state)
        if status == RunStatus.FAILED:
            return status
        try:
            # a spent time budget shortens the run: the plan becomes the steps actually taken
            run.update_info(status=status, error=None, total_steps=self.total_steps)
        except OSError as e:
            print(f"warning: could not record status '{status}': {e}", file=sys.stderr)
        return status

    def _train(self, state: dict) -> RunStatus:
        """The loop, with every failure turned into a status and a sentence (written by rank 0)."""
        try:
            return self._loop(state)
        except TrainingDiverged as e:
            return self._fail(str(e))
        except OSError as e:
            what = "the run directory"
            return self._fail(_disk_full_message(e, what) if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}")
        except Exception as e:
            if self.world.distributed:  # a peer that died breaks the next collective operation
                return self._fail(self._peer_failure(state, e))
            traceback.print_exc()
            return self._fail(f"{type(e).__name__}: {e}")

    def _peer_failure(self, state: dict, e: Exception) -> str:
        time.sleep(0.5)  # let the process that died be seen as gone
        dead = distributed.dead_ranks(self.run.path, self.world)
        who = (
            f"rank {', '.join(map(str, dead))} of {self.world.size} died"
            if dead
            else f"a process of this {self.world.size}-process job failed (on another machine, or see train.log)"
        )
        last = f"the last checkpoint ({self._last_ckpt}) is intact" if self._last_ckpt else "no checkpoint was written"
        return (
            f"{who} at step {state['step']}; {last}. Resume with: python -m genlab train --resume RUN_DIR "
            f"(any number of processes). [{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}]"
        )

    def _warn_if_diverging(self, row: TrainRow) -> None:
        """A loss can blow up without becoming NaN; bits/dim far above 8 (what knowing nothing about the
        pixels costs) means the run is diverging. Said once, in run.json; the run goes on (clipping may
        bring it back)."""
        bpd = row.value("bpd")
        if bpd is not None and bpd > DIVERGED_BPD and not getattr(self, "_warned", False):
            self._warned = True
            self.run.update_info(
                warning=f"train bits/dim reached {bpd:.3g} at step {row.step}, far worse than uniform noise "
                f"(8 bits/dim): the learning rate ({self.cfg.lr:g}) is probably too high; lower --lr"
            )

    def _mean_over_processes(self, sums: dict, count: int) -> dict[str, float]:
        """Per-step means of the logged metrics, over the steps since the last row and over all processes."""
        if not count:
            return {}
        keys = sorted(sums)
        vals = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32, device=self.device) for k in keys])
        vals = distributed.all_sum(self.world, vals) / self.world.size
        return {k: float(v) / count for k, v in zip(keys, vals.tolist())}

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

    def _checkpoint(self, state: dict) -> None:
        if self.world.main:
            self.run.save_checkpoint(self.model, self.opt, state, ema=self.averaged)
        self._last_ckpt = f"step {state['step']}"

    def _loop(self, state: dict) -> RunStatus:
        cfg, run, model, world = self.cfg, self.run, self.model, self.world
        step, consecutive_bad = state["step"], 0
        from tqdm.auto import tqdm

        bar = tqdm(
            total=self.total_steps,
            initial=step,
            disable=None if world.main else True,
            dynamic_ncols=True,
            desc=f"{cfg.model}",
        )
        sums, count, skipped = {}, 0, 0
        t_interval = time.perf_counter()
        clip = cfg.grad_clip if cfg.grad_clip else float("inf")
        model.train()
        state["side_elapsed"] = state.get("side_elapsed", 0.0) + self.setup_side_s
        while step < self.total_steps:
            stop = self.stop_requested or (world.main and run.stop_file.exists())
            if stop and not world.distributed:
                self._checkpoint({**state, "step": step})
                bar.close()
                return RunStatus.STOPPED
            lr = cfg.lr_at(step, self.total_steps)  # also what a resume with a new --lr or schedule changes
            for group in self.opt.param_groups:
                group["lr"] = lr
            x = self._batch(step)
            with self._autocast():
                loss, metrics = self.step_loss(x)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # under DDP the gradients arrive averaged over all processes
            loss = loss.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            bad = not (torch.isfinite(loss) and torch.isfinite(grad_norm))
            spent = state.get("elapsed", 0.0) + time.perf_counter() - t_interval
            if cfg.side_work_counts:  # public mode: evaluations, FID and checkpoints use the budget too
                spent += state.get("side_elapsed", 0.0)
            time_up = bool(cfg.max_minutes) and spent > 60 * cfg.max_minutes
            if world.distributed:  # every process takes the same decisions at the same step
                stop, bad, time_up = map(bool, distributed.all_max(world, [stop, bad, time_up], self.device))
                if stop:
                    self._checkpoint({**state, "step": step})
                    bar.close()
                    distributed.barrier(world)  # nobody leaves while rank 0 still writes
                    return RunStatus.STOPPED
            if bad:
                # a non-finite step changes no weight (its batch is still consumed, so step <-> batch stays
                # deterministic); too many in a row means the run has diverged
                skipped += 1
                consecutive_bad += 1
                state["nonfinite_total"] = state.get("nonfinite_total", 0) + 1
                if consecutive_bad >= cfg.max_nonfinite:
                    raise TrainingDiverged(
                        f"step {step + 1}: the loss or gradients were not finite for {consecutive_bad} consecutive "
                        f"steps (loss={loss.item():.4g}, grad norm={float(grad_norm):.4g}). The likely cause is a "
                        f"learning rate too high for this model (lr={cfg.lr}); lower --lr (e.g. {cfg.lr / 10:g})"
                        + (
                            f" or tighten --grad-clip (now {cfg.grad_clip:g})"
                            if cfg.grad_clip
                            else " or set --grad-clip"
                        )
                        + (
                            f". The last good checkpoint ({self._last_ckpt}) is untouched."
                            if self._last_ckpt
                            else ". No checkpoint had been written yet."
                        )
                    )
            else:
                consecutive_bad = 0
                self.opt.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                # summed as tensors: no device sync until the row is written
                for k, v in {**metrics, "grad_norm": grad_norm}.items():
                    sums[k] = sums.get(k, 0.0) + (v.detach().float() if torch.is_tensor(v) else v)
                count += 1
            step += 1
            bar.update(1)
            state["step"] = step
            if time_up:
                self.total_steps = step  # the time budget is spent: this step is the last one
            if step % cfg.log_every == 0 or step == self.total_steps:
                now = time.perf_counter()
                dt = now - t_interval
                state["elapsed"] = state.get("elapsed", 0.0) + dt
                means = self._mean_over_processes(sums, count)
                row = TrainRow(
                    step=step,
                    epoch=step / self.steps_per_epoch,
                    time=round(state["elapsed"], 3),
                    timestamp=time.time(),
                    images_per_s=round((count + skipped) * self.images_per_step / max(dt, 1e-9), 2),
                    lr=self.opt.param_groups[0]["lr"],
                    skipped_steps=skipped,
                    metrics=means,
                )
                if world.main:
                    run.append_metrics(row)
                    self._warn_if_diverging(row)
                bar.set_postfix({k: f"{v:.3f}" for k in ("loss", "bpd") if (v := row.value(k)) is not None})
                sums, count, skipped = {}, 0, 0
                t_interval = time.perf_counter()
            t_side = time.perf_counter()
            if step % self.eval_every == 0 or step == self.total_steps:
                test = self.evaluate()  # every process evaluates its share
                if world.main:
                    run.append_metrics(
                        EvalRow(
                            step=step,
                            epoch=step / self.steps_per_epoch,
                            time=round(state.get("elapsed", 0.0), 3),
                            timestamp=time.time(),
                            metrics=test,
                        )
                    )
                    self.save_samples(step)
                    self.keep_if_best(step, test)
            # FID on the whole K samples, by rank 0 (the others wait at the next step's reduction)
            # a public run whose budget is spent skips its last FID (an FID of 1,000 samples takes minutes on a CPU)
            fid_due = (step % cfg.fid_every == 0 or step == self.total_steps) if cfg.fid_every else False
            fid_due = fid_due and not (time_up and cfg.side_work_counts)
            if self.fid is not None and world.main and fid_due:
                run.append_metrics(
                    FidRow(
                        step=step,
                        epoch=step / self.steps_per_epoch,
                        time=round(state.get("elapsed", 0.0), 3),
                        timestamp=time.time(),
                        **self.measure_fid(),
                    )
                )
            # during a streak of non-finite steps the last checkpoint stays the last good one
            if (step % self.ckpt_every == 0 or step == self.total_steps) and consecutive_bad == 0:
                self._checkpoint(dict(state))
            side = time.perf_counter() - t_side
            t_interval += side  # evaluation and checkpoints are not training time (nor part of images/s)
            state["side_elapsed"] = state.get("side_elapsed", 0.0) + side
        bar.close()
        distributed.barrier(world)  # nobody leaves while rank 0 still writes
        return RunStatus.FINISHED
