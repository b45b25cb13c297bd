"""``--hflip``: a random half of each training batch mirrored left-right, drawn from (seed, step)
alone, so that a resumed run and a torchrun job flip exactly the images one uninterrupted process
would have flipped."""

import torch

from conftest import tiny_train_config
from genlab import load_model
from genlab.data import load_dataset
from genlab.runs.batches import Batches
from genlab.runs.distributed import World
from genlab.runs.trainer import Trainer


def _built(tmp_path, name, world=World(rank=0, size=1), **kw) -> Batches:
    """The batches a run of ``tiny_train_config(**kw)`` trains on (as process ``world.rank`` of ``world.size``)."""
    cfg = tiny_train_config(**kw)
    train = load_dataset(cfg.dataset, cfg.image_size).train
    return Batches(train, cfg.batch_size, cfg.seed, world, cfg.hflip, torch.contiguous_format)


def test_hflip_mirrors_about_half_of_each_batch_and_nothing_else(tmp_path):
    plain, flipped = _built(tmp_path, "plain"), _built(tmp_path, "flip", hflip=True)
    n_flipped = n = 0
    patterns = set()
    for step in range(8):  # over more than one epoch of emoji's training split at batch 32
        a, b = plain(step), flipped(step)
        same = (a == b).flatten(1).all(1)  # [B]
        mirrored = (a.flip(-1) == b).flatten(1).all(1)  # [B]
        symmetric = (a == a.flip(-1)).flatten(1).all(1)
        assert (same | mirrored).all()  # each image is itself or its mirror: the same images, the same order
        n_flipped += int((mirrored & ~symmetric).sum())
        n += int((~symmetric).sum())
        patterns.add(tuple(mirrored.tolist()))
    assert 0.35 < n_flipped / n < 0.65, (n_flipped, n)
    assert len(patterns) == 8  # a new draw at every step
    assert torch.equal(flipped(3), _built(tmp_path, "again", hflip=True)(3))  # a function of the step
    assert not torch.equal(flipped(3), _built(tmp_path, "seed1", hflip=True, seed=1)(3))


def test_two_processes_flip_the_slices_of_the_one_process_batch(tmp_path):
    one = _built(tmp_path, "one", hflip=True)
    halves = []
    for rank in (0, 1):
        halves.append(_built(tmp_path, f"rank{rank}", world=World(rank=rank, size=2), hflip=True)(5))
    assert torch.equal(torch.cat(halves), one(5))


def test_a_run_with_hflip_resumes_exactly(tmp_path):
    Trainer(tiny_train_config(hflip=True), tmp_path / "straight").fit()
    Trainer(tiny_train_config(hflip=True, max_steps=6), tmp_path / "split").fit()
    assert Trainer(tiny_train_config(hflip=True), tmp_path / "split", resume=True).fit() == "finished"
    a, b = load_model(tmp_path / "straight").state_dict(), load_model(tmp_path / "split").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # (test_config: --hflip itself cannot change on resume)


def test_the_cli_flag_reaches_the_config():
    from genlab.runs.config import TrainConfig

    cfg = TrainConfig(model="realnvp", hflip=True)
    assert "--hflip" in cfg.argv() and "--hflip" not in TrainConfig(model="realnvp").argv()
