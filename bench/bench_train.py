"""Training throughput of genlab's VAE trainer against pythae's VAE, in one invocation.

Both sides train the *same* encoder and decoder modules (genlab's, wrapped in pythae's
BaseEncoder/BaseDecoder), on the same emoji images, with the same batch size, optimizer
(Adam) and learning rate, for the same number of epochs, each with one evaluation on the
test split per epoch. genlab's loss is the discretized-logistic ELBO; pythae's is its
built-in MSE ELBO (it has no discretized likelihood), which costs the same to compute.

    python bench/bench_train.py --epochs 3 --image-size 64 --batch-size 128
    python bench/bench_train.py --device cuda

Reports end-to-end images/s (trainer included) and the bare step rate (forward, backward,
Adam step on a resident batch) so that trainer overhead and model compute can be told apart.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab.data import load_dataset  # noqa: E402
from genlab.device import resolve_device  # noqa: E402
from genlab.models.vae import VAE, Decoder, Encoder, VAEConfig  # noqa: E402
from genlab.runs.config import TrainConfig  # noqa: E402
from genlab.runs.rundir import RunDir  # noqa: E402
from genlab.runs.trainer import Trainer  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_steps(step_fn, params, device, n_warm=3, n=15) -> float:
    """Images/s of forward+backward+Adam on one resident batch, median of n timed steps."""
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    for i in range(n_warm + n):
        sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, bs = step_fn()
        loss.backward()
        opt.step()
        sync(device)
        if i >= n_warm:
            times.append(time.perf_counter() - t)
    return bs / statistics.median(times)


def bench_genlab(args, device, data, cfg_model) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            model="vae",
            model_config=cfg_model,
            dataset="emoji",
            image_size=args.image_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=1e-3,
            device=str(device),
            sample_n=64,
            amp=False,  # the peer trains in float32; bench_precision.py measures bf16 autocast
        )
        t = time.perf_counter()
        status = Trainer(tc, Path(tmp) / "run").fit()
        wall = time.perf_counter() - t
        rows = RunDir(Path(tmp) / "run").read_metrics()
    steps = args.epochs * (len(data.train) // args.batch_size)
    train_rows = [r for r in rows if r.kind == "train"]
    final = [r for r in rows if r.kind == "eval"][-1].metrics
    m = VAE(VAEConfig(image_size=args.image_size, channels=3, **cfg_model)).to(device).train()
    m.to(memory_format=torch.channels_last)  # as genlab's trainer does
    x = (data.train[: args.batch_size].to(device).float() / 255).contiguous(memory_format=torch.channels_last)
    bare = bare_steps(lambda: (m.loss(x)[0], len(x)), m.parameters(), device)
    return {
        "status": status,
        "wall_s": wall,
        "images_per_s": steps * args.batch_size / wall,
        "median_logged_images_per_s": statistics.median(r.images_per_s for r in train_rows),
        "bare_images_per_s": bare,
        "final_test": f"{final['test_bpd']:.3f} bpd (-ELBO)",
    }


def bench_pythae(args, device, data, cfg_model) -> dict:
    from pythae.models import VAE as PVAE
    from pythae.models import VAEConfig as PVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    logging.getLogger("pythae").setLevel(logging.WARNING)
    gcfg = VAEConfig(image_size=args.image_size, channels=3, **cfg_model)

    class Enc(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = Encoder(gcfg)

        def forward(self, x):
            mean, logvar = self.net(x)
            return ModelOutput(embedding=mean, log_covariance=logvar)

    class Dec(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = Decoder(gcfg)

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z)[0])

    pcfg = PVAEConfig(
        input_dim=(3, args.image_size, args.image_size), latent_dim=gcfg.latent_dim, reconstruction_loss="mse"
    )
    torch.manual_seed(0)
    model = PVAE(model_config=pcfg, encoder=Enc(), decoder=Dec())
    train = data.train.float() / 255
    test = data.test.float() / 255
    with tempfile.TemporaryDirectory() as tmp:
        tcfg = BaseTrainerConfig(
            output_dir=tmp,
            num_epochs=args.epochs,
            learning_rate=1e-3,
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.batch_size,
            no_cuda=device.type != "cuda",
        )
        pipe = TrainingPipeline(model=model, training_config=tcfg)
        t = time.perf_counter()
        pipe(train_data=train, eval_data=test)
        wall = time.perf_counter() - t
    # pythae keeps the last, partial batch of each epoch
    n_images = args.epochs * len(train)
    m = PVAE(model_config=pcfg, encoder=Enc(), decoder=Dec()).to(device).train()
    x = train[: args.batch_size].to(device)
    from pythae.data.datasets import DatasetOutput

    batch = DatasetOutput(data=x)
    bare = bare_steps(lambda: (m(batch).loss, len(x)), m.parameters(), device)
    return {
        "status": "finished",
        "wall_s": wall,
        "images_per_s": n_images / wall,
        "median_logged_images_per_s": float("nan"),
        "bare_images_per_s": bare,
        "final_test": "(MSE ELBO)",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-pythae", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    data = load_dataset("emoji", args.image_size)
    cfg_model = {"latent_dim": 128, "width": 32}
    results = {"genlab": bench_genlab(args, device, data, cfg_model)}
    if not args.skip_pythae:
        results["pythae 0.1.2"] = bench_pythae(args, device, data, cfg_model)
    n_params = VAE(VAEConfig(image_size=args.image_size, channels=3, **cfg_model)).num_parameters()
    dev_name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    print(
        f"\nemoji {args.image_size}x{args.image_size}, {len(data.train)} train images, batch {args.batch_size}, "
        f"{args.epochs} epochs, VAE {n_params / 1e6:.2f}M params, device {device} ({dev_name}), "
        f"torch {torch.__version__}"
    )
    print("| trainer | wall (s) | end-to-end images/s | bare step images/s | final test |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['images_per_s']:.0f} | {r['bare_images_per_s']:.0f} "
            f"| {r['final_test']} |"
        )


if __name__ == "__main__":
    os.environ.setdefault("GENLAB_OFFLINE", "1")
    main()
