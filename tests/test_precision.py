"""bf16 autocast on the CPU: used where the CPU has native bf16 (AVX512-BF16 or AMX), float32 elsewhere,
recorded in run.json, and close to float32 in what it computes."""

import pytest
import torch

from conftest import tiny_train_config
from genlab.device import _cpu_has_native_bf16, autocast, has_fast_bf16, precision
from genlab.models import RealNVP, RealNVPConfig
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

CPU = torch.device("cpu")
FAST = has_fast_bf16(CPU)


@pytest.fixture(autouse=True)
def _probe_again():
    """has_fast_bf16 probes the CPU once per process: these tests patch the probes, so forget the answer."""
    _cpu_has_native_bf16.cache_clear()
    yield
    _cpu_has_native_bf16.cache_clear()


def _no_bf16(monkeypatch):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)


def test_a_cpu_without_native_bf16_computes_in_float32(monkeypatch):
    _no_bf16(monkeypatch)
    assert not has_fast_bf16(CPU) and precision(CPU, amp=True) == "float32"
    with autocast(CPU, True):
        assert not torch.is_autocast_enabled("cpu")


def test_a_cpu_with_native_bf16_autocasts_when_asked(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert has_fast_bf16(CPU) and precision(CPU, amp=True) == "bf16 autocast"
    assert precision(CPU, amp=False) == "float32"
    with autocast(CPU, True):
        assert torch.is_autocast_enabled("cpu")
        assert torch.nn.functional.linear(torch.randn(2, 3), torch.randn(4, 3)).dtype == torch.bfloat16
    with autocast(CPU, False):
        assert not torch.is_autocast_enabled("cpu")
    assert has_fast_bf16(torch.device("cuda")) and not has_fast_bf16(torch.device("meta"))


def test_the_flows_last_convolution_runs_in_float32_under_autocast():
    """A shift rounded to bf16 cost an fp32-trained MNIST flow 0.045 bits/dim under autocast (1.047 -> 1.092);
    with the last convolution in float32 it costs 0.0035 (docs/benchmarks.md)."""
    m = RealNVP(RealNVPConfig(image_size=8, num_blocks=1, features=8))
    seen = []
    for mod in m.modules():
        if hasattr(mod, "out") and isinstance(mod.out, torch.nn.Conv2d):
            mod.out.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out.dtype)))
            torch.nn.init.normal_(mod.out.weight, std=0.1)  # off the identity start
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m.log_prob(x)
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)


@pytest.mark.parametrize("model,opts", [("vae", None), ("realnvp", {"num_blocks": 1, "features": 8})])
def test_training_records_its_precision_and_bf16_stays_close_to_float32(tmp_path, model, opts):
    runs = {}
    for amp in (True, False):
        kw = {"model": model, "amp": amp, "log_every": 1, "max_steps": 6}  # amp overrides conftest's False
        if opts:
            kw["model_config"] = opts
        assert Trainer(tiny_train_config(**kw), tmp_path / f"amp-{amp}").fit() == "finished"
        run = RunDir(tmp_path / f"amp-{amp}")
        assert run.info().precision == ("bf16 autocast" if amp and FAST else "float32")
        runs[amp] = [r.value("bpd") for r in run.read_metrics() if r.kind == "train"]
    if FAST:  # the likelihood is summed in float32; bf16 convolutions move it by well under 1%
        assert runs[True] == pytest.approx(runs[False], rel=1e-2) and runs[True] != runs[False]
    else:
        assert runs[True] == runs[False]
