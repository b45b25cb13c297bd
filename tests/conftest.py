import os
import tempfile

# Before genlab is imported anywhere: no downloads, and caches in a throwaway place.
os.environ["GENLAB_OFFLINE"] = "1"
os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-test-home-"))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_vae():
    from genlab.models import VAE, VAEConfig

    torch.manual_seed(0)
    return VAE(VAEConfig(image_size=8, channels=1, latent_dim=3, width=4, max_width=8)).eval()


@pytest.fixture
def pixels():
    """A [3, 1, 8, 8] batch of 8-bit pixels in [0, 1], including both end bins."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (3, 1, 8, 8), generator=g)
    x[0, 0, 0, :4] = 0
    x[1, 0, 0, :4] = 255
    return x.float() / 255


def stop_all_runs(root) -> None:
    """Ask every run under ``root`` to stop: a failed test must not leave training processes behind."""
    from pathlib import Path

    for run_json in Path(root).glob("*/run.json"):
        (run_json.parent / "STOP").touch()


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature, IHDR, an empty IDAT and IEND: what a decompression bomb shows before its pixels."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


TINY_VAE = {"latent_dim": 4, "width": 4, "max_width": 8}


def tiny_train_config(**kw):
    """A TrainConfig for a tiny VAE on emoji 16×16 that trains in about a second on the CPU."""
    from genlab.runs.config import TrainConfig

    base = dict(
        model="vae",
        model_config=TINY_VAE,
        dataset="emoji",
        image_size=16,
        max_steps=12,
        batch_size=32,
        log_every=3,
        eval_every=6,
        eval_batches=2,
        sample_n=4,
        device="cpu",
        amp=False,  # the same float32 numbers on every CPU, with native bf16 or without (test_precision covers amp)
    )
    return TrainConfig(**{**base, **kw})
