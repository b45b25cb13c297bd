"""``--ema``: the moving average of the weights is what a run evaluates, samples and saves, the training
weights train on unchanged beside it, and both survive a resume (or a resume that turns it on or off)."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_VAE, tiny_train_config
from genlab import load_model
from genlab.metrics.likelihood import average_metrics
from genlab.models import VAE, VAEConfig
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer


def saved(run_dir) -> dict[str, torch.Tensor]:
    """model.safetensors of the run's checkpoint: what loading the run gives."""
    return load_model(run_dir).state_dict()


def training_weights(run_dir) -> dict[str, torch.Tensor]:
    """The weights the optimizer trains: under ``train.`` beside the optimizer when the run averages."""
    tensors = load_file(str(RunDir(run_dir).checkpoint / "optimizer.safetensors"))
    train = {k[len("train.") :]: v for k, v in tensors.items() if k.startswith("train.")}
    return train or saved(run_dir)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cfg(**kw):
    return tiny_train_config(**{"log_every": 1, "eval_every": 3, **kw})


def test_the_saved_model_is_the_exponential_moving_average_of_the_training_weights(tmp_path):
    """By hand: e_0 = w_0 (the initial weights), e_t = d e_{t-1} + (1 - d) w_t, from runs of 1, 2, 3 steps."""
    d = 0.6
    torch.manual_seed(0)  # the trainer seeds the weights with cfg.seed before building the model
    init = VAE(VAEConfig(image_size=16, channels=3, **TINY_VAE)).state_dict()
    ws = []
    for n in (1, 2, 3):
        assert Trainer(cfg(max_steps=n, eval_every=n), tmp_path / f"plain{n}").fit() == "finished"
        ws.append(saved(tmp_path / f"plain{n}"))
    assert Trainer(cfg(max_steps=3, ema=d), tmp_path / "ema").fit() == "finished"
    assert same(training_weights(tmp_path / "ema"), ws[-1])  # averaging does not change what trains
    avg = saved(tmp_path / "ema")
    assert not same(avg, ws[-1])
    for k, e in init.items():
        if not e.is_floating_point():
            continue
        for w in ws:
            e = d * e + (1 - d) * w[k]
        torch.testing.assert_close(avg[k], e, rtol=1e-5, atol=1e-6, msg=k)


def test_evaluations_and_sample_grids_use_the_average(tmp_path):
    out = tmp_path / "ema"
    assert Trainer(cfg(max_steps=6, ema=0.5), out).fit() == "finished"
    run = RunDir(out)
    last = [r for r in run.read_metrics() if r.kind == "eval"][-1]
    model = load_model(out)
    from genlab.data import load_dataset

    test = load_dataset("emoji", 16).test[: 2 * 32].float() / 255  # eval_batches=2 of batch 32
    torch.manual_seed(0)
    ref = average_metrics(model, test, 32)["bpd"]
    assert last.value("test_bpd") == pytest.approx(ref, rel=0.05)  # the VAE's bound is stochastic
    plain = tmp_path / "plain"
    Trainer(cfg(max_steps=6), plain).fit()
    assert last.value("test_bpd") != [r for r in RunDir(plain).read_metrics() if r.kind == "eval"][-1].value("test_bpd")


def test_a_resumed_average_continues_exactly(tmp_path):
    Trainer(cfg(max_steps=6, ema=0.7), tmp_path / "straight").fit()
    Trainer(cfg(max_steps=3, ema=0.7), tmp_path / "split").fit()
    assert Trainer(cfg(max_steps=6, ema=0.7), tmp_path / "split", resume=True).fit() == "finished"
    assert same(saved(tmp_path / "split"), saved(tmp_path / "straight"))
    assert same(training_weights(tmp_path / "split"), training_weights(tmp_path / "straight"))


def test_averaging_can_start_or_stop_at_a_resume_without_changing_the_training(tmp_path):
    Trainer(cfg(max_steps=6), tmp_path / "plain").fit()
    # on at step 3: the average starts from the weights there
    Trainer(cfg(max_steps=3), tmp_path / "on").fit()
    at3 = saved(tmp_path / "on")
    assert Trainer(cfg(max_steps=6, ema=0.5), tmp_path / "on", resume=True).fit() == "finished"
    assert same(training_weights(tmp_path / "on"), saved(tmp_path / "plain"))
    assert not same(saved(tmp_path / "on"), saved(tmp_path / "plain")) and not same(saved(tmp_path / "on"), at3)
    # off at step 3: training goes on from the training weights, not from their average
    Trainer(cfg(max_steps=3, ema=0.5), tmp_path / "off").fit()
    assert Trainer(cfg(max_steps=6, ema=None), tmp_path / "off", resume=True).fit() == "finished"
    assert same(saved(tmp_path / "off"), saved(tmp_path / "plain"))
