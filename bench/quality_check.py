"""KID and precision/recall on real Inception features: genlab's against torch-fidelity's own functions.

tests/test_quality.py checks the two on synthetic 2048-d features in every CI run; this repeats the check on
what a sweep really compares: the Inception features of a model's samples at one temperature against those of
its training images (the sweep's cached reference), and prints the largest differences.

    python bench/quality_check.py checkpoints/vae-mnist-32 --temperature 1.0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genlab import load_model  # noqa: E402
from genlab.catalog import dataset_of  # noqa: E402
from genlab.metrics.fid import FID  # noqa: E402
from genlab.metrics.quality import kid, precision_recall  # noqa: E402
from genlab.metrics.sweep import SWEEP_REF, SWEEP_SAMPLES, reference_features  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--n", type=int, default=SWEEP_SAMPLES)
    p.add_argument("--ref-n", type=int, default=SWEEP_REF)
    args = p.parse_args()
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    model = load_model(args.model)
    fid = FID(device="cpu")
    real = reference_features(fid, dataset_of(args.model), model.config.image_size, args.ref_n)
    fake = fid.features_of_model(model, args.n, temperature=args.temperature, seed=0)
    t = time.perf_counter()
    ours_kid, ours_pr = kid(real, fake), precision_recall(real, fake)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    f1, f2 = torch.from_numpy(fake), torch.from_numpy(real)  # torch-fidelity's input 1 is the generated set
    theirs_kid = kid_features_to_metric(f1, f2, kid_subsets=100, kid_subset_size=min(1000, len(fake)), verbose=False)
    theirs_pr = prc_features_to_metric(f1, f2, verbose=False)
    theirs_s = time.perf_counter() - t
    rows = [
        ("KID mean", ours_kid.mean, theirs_kid["kernel_inception_distance_mean"]),
        ("KID std", ours_kid.std, theirs_kid["kernel_inception_distance_std"]),
        ("precision", ours_pr.precision, theirs_pr["precision"]),
        ("recall", ours_pr.recall, theirs_pr["recall"]),
    ]
    print(f"{args.model} at T={args.temperature:g}: {len(fake)} samples against {len(real)} training images")
    for name, a, b in rows:
        print(
            f"  {name:<10} genlab {a:.8f}  torch-fidelity {b:.8f}  "
            f"|diff| {abs(a - b):.2e}  rel {abs(a - b) / abs(b):.2e}"
        )
    print(f"  seconds: genlab {ours_s:.1f}, torch-fidelity {theirs_s:.1f} (KID and P/R together)")


if __name__ == "__main__":
    main()
