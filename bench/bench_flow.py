"""RealNVP training speed and bits/dim: genlab against normflows, at an equal step budget, in one invocation.

Both flows have the same multi-scale RealNVP layout (Dinh et al. 2017), built in normflows
from its own parts: per scale 3 checkerboard affine couplings, a squeeze, 3 channel-wise
couplings, half the channels factored out; the last scale 4 checkerboard couplings. Both use
the logit preprocessing with alpha = 0.05 (normflows' ``transforms.Logit``), the same uniform
dequantization, the same images in the same order, batch, Adam learning rate and gradient
clipping. The s/t networks have the same number of convolutions (10) and the same width;
genlab's are weight-normalised ResNets with a tanh-bounded log-scale, normflows' are its
``ConvNet2d`` (a plain conv stack) with RealNVP's ``exp`` scale map.

    python bench/bench_flow.py --steps 200 --batch-size 64
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab.data import load_dataset  # noqa: E402
from genlab.device import resolve_device  # noqa: E402
from genlab.models import RealNVPConfig  # noqa: E402
from genlab.runs.config import TrainConfig  # noqa: E402
from genlab.runs.rundir import RunDir  # noqa: E402
from genlab.runs.trainer import Trainer  # noqa: E402


def normflows_realnvp(cfg: RealNVPConfig):
    """genlab's default RealNVP layout (num_scales=2) out of normflows' building blocks."""
    import normflows as nf

    assert cfg.num_scales == 2, "the normflows replica is written for two scales"
    C, S, F_, B = cfg.channels, cfg.image_size, cfg.features, cfg.num_blocks
    n_convs = 2 * B + 2  # genlab's s/t net: in conv, B residual blocks of 2 convs, out conv

    def coupling(channels: int, mode: str):
        if "checkerboard" in mode:
            c_in, c_out = channels, 2 * channels
        else:
            c_in, c_out = (channels + 1) // 2, 2 * (channels // 2)
        net = nf.nets.ConvNet2d([c_in] + [F_] * (n_convs - 1) + [c_out], [3] * n_convs, init_zeros=True)
        return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)

    cb = lambda ch, i: coupling(ch, "checkerboard" if i % 2 == 0 else "checkerboard_inv")  # noqa: E731
    cw = lambda ch, i: coupling(ch, "channel" if i % 2 == 0 else "channel_inv")  # noqa: E731
    # generative order: innermost latent first
    final = [cb(2 * C, i) for i in range(4)]
    outer = [cw(4 * C, i) for i in range(3)] + [nf.flows.Squeeze()] + [cb(C, i) for i in range(3)]
    half = (2 * C, S // 2, S // 2)
    q0 = [nf.distributions.DiagGaussian(half, trainable=False), nf.distributions.DiagGaussian(half, trainable=False)]
    return nf.MultiscaleFlow(
        q0, [final, outer], [nf.flows.Merge()], transform=nf.transforms.Logit(cfg.alpha), class_cond=False
    )


def dequantize(x_u8: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return (x_u8.float() + torch.rand(x_u8.shape, generator=g)) / 256


def bench_genlab(args, device, cfg) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(
            model="realnvp",
            model_config={"num_blocks": cfg.num_blocks, "features": cfg.features},
            dataset="emoji",
            image_size=cfg.image_size,
            max_steps=args.steps,
            batch_size=args.batch_size,
            lr=1e-3,
            device=str(device),
            eval_every=args.steps,
            log_every=10,
            sample_n=16,
            amp=False,  # the peer trains in float32; bench_precision.py measures bf16 autocast
        )
        t = time.perf_counter()
        status = Trainer(tc, Path(tmp) / "run").fit()
        wall = time.perf_counter() - t
        run = RunDir(Path(tmp) / "run")
        rows = run.read_metrics()
        from genlab import load_model

        model = load_model(run.path)
    train = [r for r in rows if r.kind == "train"]
    return {
        "status": status,
        "wall_s": wall,
        "train_s": train[-1].time,
        "images_per_s": args.steps * args.batch_size / train[-1].time,
        "test_bpd": [r for r in rows if r.kind == "eval"][-1].value("test_bpd"),
        "params": model.num_parameters(),
    }


def bench_normflows(args, device, cfg, data) -> dict:
    torch.manual_seed(0)
    model = normflows_realnvp(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    D = cfg.channels * cfg.image_size**2
    g = torch.Generator().manual_seed(0)
    steps_per_epoch = len(data.train) // args.batch_size
    nonfinite = 0
    t = time.perf_counter()
    for step in range(args.steps):
        epoch, i = divmod(step, steps_per_epoch)
        perm = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(epoch))
        x = dequantize(data.train[perm[i * args.batch_size : (i + 1) * args.batch_size]], g).to(device)
        loss = model.forward_kld(x) / (D * math.log(2)) + 8  # bits/dim over 8-bit pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        if torch.isfinite(loss) and torch.isfinite(gn):
            opt.step()
        else:
            nonfinite += 1
    train_s = time.perf_counter() - t
    model.eval()
    tg = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        nll = torch.cat(
            [
                -model.log_prob(dequantize(data.test[s : s + 128], tg).to(device), None)
                for s in range(0, len(data.test), 128)
            ]
        )
    return {
        "status": f"finished ({nonfinite} non-finite steps skipped)",
        "wall_s": train_s,
        "train_s": train_s,
        "images_per_s": args.steps * args.batch_size / train_s,
        "test_bpd": (nll.mean() / (D * math.log(2)) + 8).item(),
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    cfg = RealNVPConfig(image_size=32, channels=3)
    data = load_dataset("emoji", 32)
    res = {"genlab": bench_genlab(args, device, cfg), "normflows": bench_normflows(args, device, cfg, data)}
    dev_name = (
        torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    print(
        f"\nemoji 32x32, {len(data.train)} train / {len(data.test)} test images, batch {args.batch_size}, "
        f"{args.steps} steps, device {device} ({dev_name}), torch {torch.__version__}"
    )
    print("| library | params | training time (s) | training images/s | test bpd after equal steps | status |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        print(
            f"| {name} | {r['params'] / 1e6:.2f}M | {r['train_s']:.1f} | {r['images_per_s']:.1f} | "
            f"{r['test_bpd']:.3f} | {r['status']} |"
        )


if __name__ == "__main__":
    os.environ.setdefault("GENLAB_OFFLINE", "1")
    main()
