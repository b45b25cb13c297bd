"""How fast a run trains and when it will end, from its metric rows: steady numbers for a progress bar.

Each train row's ``images_per_s`` is the speed of the last few steps alone, which swings with
whatever else the machine does; shown raw, an ETA jumped from 1:52 to 4:05 and back within a minute.
So a live run shows an exponential moving average of the rows' speed, a finished run its mean over
the whole run, and the ETA is the wall-clock rate over the last minutes of rows, which includes the
evaluations, grids and checkpoints that a training-only speed leaves out.
"""

from __future__ import annotations

from .records import TrainRow

EMA_ALPHA = 0.2  # weight of the newest row in the smoothed speed
ETA_WINDOW_S = 180.0  # wall-clock seconds of rows behind the ETA's rate
GAP_S = 120.0  # rows further apart than this belong to different attempts (a resume)


def train_rows(rows) -> list[TrainRow]:
    return [r for r in rows if isinstance(r, TrainRow) and r.images_per_s and r.images_per_s > 0]


def smoothed_speed(rows) -> float | None:
    """Images per second of training, as an exponential moving average over the train rows."""
    speed = None
    for r in train_rows(rows):
        speed = r.images_per_s if speed is None else EMA_ALPHA * r.images_per_s + (1 - EMA_ALPHA) * speed
    return speed


def mean_speed(rows, images_per_step: int) -> float | None:
    """Images per second over the whole run: every image trained on, over every second of training."""
    last = next((r for r in reversed(rows) if isinstance(r, TrainRow)), None)
    if last is None or not last.time or last.time <= 0:
        return None
    return last.step * images_per_step / last.time


def steps_per_wall_second(rows) -> float | None:
    """Steps per wall-clock second over the last ``ETA_WINDOW_S`` of the current attempt."""
    rs = [r for r in rows if isinstance(r, TrainRow)]
    if len(rs) < 2:
        return None
    window = [rs[-1]]
    for r in reversed(rs[:-1]):
        if window[-1].timestamp - r.timestamp > GAP_S or rs[-1].timestamp - r.timestamp > ETA_WINDOW_S:
            break
        window.append(r)
    first, last = window[-1], window[0]
    dt, ds = last.timestamp - first.timestamp, last.step - first.step
    return ds / dt if dt > 0 and ds > 0 else None


def eta_seconds(rows, total_steps: int | None, images_per_step: int) -> float | None:
    """Wall-clock seconds left; early on (one row), from the training speed alone."""
    step = max((r.step for r in rows), default=0)
    if not total_steps or step >= total_steps:
        return None
    rate = steps_per_wall_second(rows)
    if rate is None:
        speed = smoothed_speed(rows)
        rate = speed / images_per_step if speed and images_per_step else None
    return (total_steps - step) / rate if rate else None
