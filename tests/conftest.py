import os
import tempfile
import time

# Before genlab is imported anywhere: no downloads, and caches in a throwaway place.
os.environ["GENLAB_OFFLINE"] = "1"
os.environ.setdefault("GENLAB_HOME", tempfile.mkdtemp(prefix="genlab-test-home-"))
# trackio reads its store's folder once, when it is first imported: a throwaway one for the whole session
os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="genlab-test-trackio-")

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


def wait_until(cond, timeout: float, what, poll_s: float = 0.2, on_poll=None):
    """Return ``cond()``'s first truthy value; fail with ``what`` and the time waited if none came within
    ``timeout`` s. ``cond`` is checked at once, every ``poll_s`` s after, and once more at the deadline.

    ``on_poll()``, if given, runs before each check (an AppTest rerun, say). ``what`` says what was awaited
    ("the run to finish"); it may be a callable, called only on a failure, to add the state at that moment.
    """
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if on_poll is not None:
            on_poll()
        value = cond()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            said = what() if callable(what) else what
            raise AssertionError(
                f"timed out after {time.monotonic() - start:.1f} s (limit {timeout:g} s) waiting for {said}"
            )
        time.sleep(min(poll_s, left))


TINY_VAE = {"latent_dim": 4, "width": 4, "max_width": 8}
MICRO_VAE = {"latent_dim": 2, "width": 2, "max_width": 4}  # smaller still: 8×8 runs that only need to finish


def vae_flags(model_config: dict) -> list[str]:
    """A VAE's model config as `genlab train` flags: ``vae_flags(TINY_VAE)`` is
    ``["--latent-dim", "4", "--width", "4", "--max-width", "8"]``."""
    return [s for k, v in model_config.items() for s in ("--" + k.replace("_", "-"), str(v))]


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


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The local Hub (tests/hub_server.py), with huggingface_hub pointed at it and a throwaway cache and
    registry."""
    from huggingface_hub import constants

    from hub_server import FakeHub

    with FakeHub() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "genlab-home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real two-step training run of a tiny VAE on emoji at 8×8."""
    from genlab.cli import main

    out = tmp_path_factory.mktemp("run") / "tiny-vae-run"
    assert (
        main(
            [
                "train",
                "vae",
                "--dataset",
                "emoji",
                "--image-size",
                "8",
                "--max-steps",
                "2",
                "--batch-size",
                "8",
                *vae_flags(MICRO_VAE),
                "--eval-batches",
                "1",
                "--sample-n",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def exported_model(tmp_path, run):
    """``run`` exported (no evaluation) as the model folder ``tmp_path/tiny-vae``, ready to put on the hub."""
    from genlab.export import export_model

    return export_model(run, tmp_path / "tiny-vae", evaluate=False, temperature=0.7)
