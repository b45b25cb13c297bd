"""The CUDA path: bf16 autocast, data resident on the GPU, saving on the GPU and loading on the CPU,
sampling on CUDA. Skipped without a GPU; ``make gpu-check`` runs them (``pytest -m cuda``)."""

import pytest
import torch

from genlab import load_model
from genlab.models import VAE, RealNVP, RealNVPConfig, VAEConfig
from genlab.runs.config import TrainConfig
from genlab.runs.rundir import RunDir
from genlab.runs.trainer import Trainer

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]


@pytest.mark.parametrize("model,opts", [("vae", {"latent_dim": 8, "width": 8}), ("realnvp", {"num_blocks": 1})])
def test_training_on_cuda_keeps_the_data_on_the_gpu_and_bf16_matches_fp32(tmp_path, model, opts):
    runs = {}
    for amp in (True, False):
        cfg = TrainConfig(
            model=model,
            model_config=opts,
            dataset="emoji",
            image_size=16,
            max_steps=20,
            batch_size=32,
            log_every=10,
            eval_every=20,
            eval_batches=2,
            device="cuda",
            amp=amp,
        )
        trainer = Trainer(cfg, tmp_path / f"amp-{amp}")
        assert trainer.fit() == "finished"
        assert trainer.batches.images.device.type == "cuda" and trainer.batches.images.dtype == torch.uint8
        runs[amp] = [r.value("bpd") for r in RunDir(tmp_path / f"amp-{amp}").read_metrics() if r.kind == "train"]
    # the likelihood is computed in float32 under autocast: bf16 convolutions move it by well under 1%
    assert runs[True] == pytest.approx(runs[False], rel=1e-2)


@pytest.mark.parametrize(
    "family", [VAE(VAEConfig(image_size=16, latent_dim=8)), RealNVP(RealNVPConfig(image_size=16, num_blocks=1))]
)
def test_saved_on_the_gpu_loads_on_the_cpu_with_identical_weights_and_samples(tmp_path, family):
    model = family.cuda()
    model.save_pretrained(tmp_path / "m")
    back = load_model(tmp_path / "m", map_location="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), back.state_dict()[k]), k
    again = load_model(tmp_path / "m", map_location="cuda")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x = again.sample(8, temperature=0.7, generator=g())
    assert x.device.type == "cuda" and x.shape == (8, 3, 16, 16) and torch.isfinite(x).all()
    assert 0 <= x.min() and x.max() <= 1
    # the same seed gives the same images on the GPU and on the CPU, up to kernel rounding
    assert (x.cpu() - back.sample(8, temperature=0.7, generator=g())).abs().max() < 1e-3
