"""Security claims of docs/security.md that are about the code itself: no pickle, no shell, no code
from downloads. The behavioural ones live beside the feature they guard (see docs/security.md)."""

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import MICRO_VAE

pytestmark = pytest.mark.fault
SOURCES = {p: p.read_text() for p in (Path(__file__).resolve().parents[2] / "genlab").rglob("*.py")}


def _calls(pattern: str) -> list[str]:
    return [f"{p.name}: {m.group(0)}" for p, src in SOURCES.items() for m in re.finditer(pattern, src)]


def test_nothing_is_ever_unpickled():
    assert not _calls(r"pickle\.loads?\(")
    assert not _calls(r"allow_pickle\s*=\s*True")
    assert not _calls(r"weights_only\s*=\s*False\s*[,)]")
    # every torch.load names weights_only=True (only FID's Inception .pth, which pytorch-fid's format needs)
    loads = [m for p, src in SOURCES.items() for m in re.findall(r"torch\.load\([^)]*\)", src)]
    assert loads and all("weights_only=True" in m for m in loads), loads
    # np.load everywhere refuses object arrays
    for p, src in SOURCES.items():
        for m in re.findall(r"np\.load\([^)]*\)", src):
            assert "allow_pickle=False" in m, (p.name, m)


def test_no_code_runs_from_anywhere_but_genlab():
    assert not _calls(r"trust_remote_code")
    assert not _calls(r"shell\s*=\s*True")
    assert not _calls(r"\bos\.system\(|\bos\.popen\(|(?<![.\w])eval\(|(?<![.\w])exec\(")


def test_a_statistics_file_holding_objects_is_refused(tmp_path):
    from genlab.metrics.fid import FIDStats

    np.savez(tmp_path / "evil.npz", mu=np.array([object()], dtype=object), sigma=np.zeros((2048, 2048)))
    with pytest.raises(ValueError, match="is not a statistics file"):
        FIDStats.load(tmp_path / "evil.npz")


def test_optimizer_state_and_rng_are_safetensors_and_json(tmp_path):
    from safetensors.torch import load_file

    from genlab.runs.config import TrainConfig
    from genlab.runs.trainer import Trainer

    cfg = TrainConfig(
        model="vae",
        model_config=MICRO_VAE,
        dataset="emoji",
        image_size=8,
        max_steps=2,
        batch_size=8,
        eval_batches=1,
        sample_n=4,
        device="cpu",
    )
    assert Trainer(cfg, tmp_path / "run").fit() == "finished"
    ckpt = tmp_path / "run" / "checkpoint"
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    assert "rng.cpu" in load_file(str(ckpt / "optimizer.safetensors"))
