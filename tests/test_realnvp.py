"""RealNVP: invertibility, log-determinants against autograd, exact bits/dim, sampling, save/load."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from genlab import load_model
from genlab.models import RealNVP, RealNVPConfig


def perturbed(cfg: RealNVPConfig, seed=0, dtype=torch.float32) -> RealNVP:
    """A model whose couplings are far from the identity (a fresh one starts as the identity)."""
    torch.manual_seed(seed)
    m = RealNVP(cfg).to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


SMALL = RealNVPConfig(image_size=8, channels=3, num_scales=2, num_blocks=1, features=8)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(
    "cfg",
    [
        SMALL,
        RealNVPConfig(image_size=16, channels=1, num_scales=3, num_blocks=2, features=8),
        RealNVPConfig(image_size=16, channels=1, num_scales=3, num_blocks=1, features=8, first_split=1),
        RealNVPConfig(image_size=8, channels=3, num_scales=3, num_blocks=1, features=8, first_split=2),  # no split
    ],
    ids=["2-scales", "3-scales", "split-from-1", "no-split"],
)
def test_inverse_of_forward_is_the_identity(cfg, mode):
    m = perturbed(cfg)
    m.train(mode == "train")
    x = torch.rand(6, cfg.channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z, logdet = m(x)
        assert z.shape == x.shape and logdet.shape == (6,)
        assert (m.inverse(z) - x).abs().max() < 1e-4
        assert (m(m.inverse(z))[0] - z).abs().max() < 1e-3


@pytest.mark.parametrize(
    "shape,scales,first_split", [((1, 4, 4), 2, 0), ((3, 4, 4), 2, 0), ((2, 4, 4), 1, 0), ((1, 8, 8), 3, 1)]
)
def test_logdet_equals_autograd_jacobian(shape, scales, first_split):
    c, s, _ = shape
    m = perturbed(
        RealNVPConfig(image_size=s, channels=c, num_scales=scales, num_blocks=1, features=4, first_split=first_split),
        dtype=torch.float64,
    )
    x = torch.rand(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.9 + 0.05
    _, logdet = m(x)
    assert (logdet - m.to_logit(x)[1]).abs().min() > 0.5  # the couplings are far from the identity
    for b in range(2):
        J = jacobian(lambda v: m(v.view(1, *shape))[0].flatten(), x[b].flatten())  # [D, D]
        sign, logabs = torch.linalg.slogdet(J)
        assert sign != 0
        assert logdet[b].item() == pytest.approx(logabs.item(), abs=1e-4)


def test_preprocessing_logdet_against_finite_differences():
    m = RealNVP(RealNVPConfig(image_size=4, channels=1, num_scales=1)).double()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    _, logdet = m.to_logit(x)
    h = 1e-6
    fd = (m.to_logit(x + h)[0] - m.to_logit(x - h)[0]) / (2 * h)  # elementwise transform: diagonal Jacobian
    assert logdet.item() == pytest.approx(torch.log(fd.abs()).sum().item(), rel=1e-7)
    assert torch.allclose(m.from_logit(m.to_logit(x)[0]), x, atol=1e-12)


def test_bits_per_dim_against_a_hand_computation():
    """A fresh RealNVP is the identity after the logit step, so its bpd has a closed form."""
    cfg = RealNVPConfig(image_size=4, channels=1, num_scales=2, num_blocks=1, features=4)
    m = RealNVP(cfg).double()
    k = torch.randint(0, 256, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    k[0, 0, 0, :2] = torch.tensor([0, 255])
    x = k.double() / 255
    _, met = m.loss(x, generator=torch.Generator().manual_seed(5))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    a, D, total = 0.05, 16, 0.0
    for b in range(2):
        nll = 0.0
        for kk, uu in zip(k[b].flatten().tolist(), u[b].flatten().tolist()):
            xd = (kk + uu) / 256  # dequantized pixel on [0, 1]
            p = a + (1 - 2 * a) * xd
            y = math.log(p / (1 - p))  # logit
            log_normal = -0.5 * (math.log(2 * math.pi) + y * y)
            log_dydx = math.log((1 - 2 * a) / (p * (1 - p)))
            nll += -(log_normal + log_dydx) + math.log(256)
        total += nll / (D * math.log(2))
    assert met["bpd"].item() == pytest.approx(total / 2, rel=1e-10)


def test_bits_per_dim_of_a_trained_like_model_matches_its_parts():
    m = perturbed(SMALL, dtype=torch.float64)
    x = torch.randint(0, 256, (3, 3, 8, 8), generator=torch.Generator().manual_seed(0)).double() / 255
    _, met = m.loss(x, generator=torch.Generator().manual_seed(1))
    xd = m.dequantize(x, torch.Generator().manual_seed(1))
    z, logdet = m(xd)
    D = 3 * 64
    log_pz = sum(-0.5 * (math.log(2 * math.pi) + v * v) for v in z.flatten().tolist())
    expected = (-(log_pz + logdet.sum().item()) / 3 + D * math.log(256)) / (D * math.log(2))
    assert met["bpd"].item() == pytest.approx(expected, rel=1e-10)
    # k=1 of the importance-weighted bound is the same number; more samples can only tighten it on average
    assert m.nll_bpd(x, k=1, generator=torch.Generator().manual_seed(1)).mean().item() == pytest.approx(
        met["bpd"].item(), rel=1e-10
    )


def test_temperature():
    m = perturbed(SMALL)
    a = m.sample(3, temperature=0.0, generator=torch.Generator().manual_seed(1))
    b = m.sample(3, temperature=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(a[0], a[2])
    # temperature multiplies the base Gaussian's standard deviation at every scale
    g = torch.Generator().manual_seed(3)
    eps = torch.randn(200, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        xs = m.inverse(0.5 * eps)
        z_back, _ = m(xs)
    assert torch.allclose(z_back, 0.5 * eps, atol=1e-3)
    assert z_back.std().item() == pytest.approx(0.5, rel=0.05)
    s = m.sample(200, temperature=0.5, generator=g)
    assert torch.allclose(s, xs.clamp(0, 1), atol=1e-6)


def test_interpolate_endpoints():
    m = perturbed(SMALL)
    z0, z1 = torch.randn(3, 8, 8), torch.randn(3, 8, 8)
    path = m.interpolate(z0, z1, steps=4, method="linear")
    assert path.shape == (4, 3, 8, 8)
    assert torch.allclose(path[0], m.inverse(z0[None])[0].clamp(0, 1), atol=1e-6)


def test_save_reload_identical_log_prob(tmp_path):
    m = perturbed(SMALL)
    m.save_pretrained(tmp_path / "flow")
    m2 = load_model(tmp_path / "flow")
    assert isinstance(m2, RealNVP) and m2.config == SMALL
    x = torch.randint(0, 256, (4, 3, 8, 8)).float() / 255
    lp1 = m.log_prob(x, generator=torch.Generator().manual_seed(0))
    lp2 = m2.log_prob(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(lp1, lp2)


def test_config_validation():
    with pytest.raises(ValueError, match="squeezed"):
        RealNVPConfig(image_size=12, num_scales=4)
    with pytest.raises(ValueError, match="first_split 3 is past"):
        RealNVPConfig(image_size=32, num_scales=3, first_split=3)


def test_a_later_first_split_keeps_every_dimension_until_that_scale():
    """first_split=k: scales before k squeeze without factoring out, so their channels all go on (and the
    old checkpoints, written before the option existed, load as first_split=0, every scale splitting)."""
    base = dict(image_size=16, channels=3, num_scales=3, num_blocks=1, features=4)
    paper, late, none = (RealNVP(RealNVPConfig(**base, first_split=k)) for k in (0, 1, 2))
    # channels into each scale's checkerboard couplings: 3, then 6 (half of 12) or 12 (all of them), ...
    assert [s.checker[0].net.inp.parametrizations.weight.original1.shape[1] for s in paper.scales] == [3, 6, 12]
    assert [s.checker[0].net.inp.parametrizations.weight.original1.shape[1] for s in late.scales] == [3, 12, 24]
    assert [s.checker[0].net.inp.parametrizations.weight.original1.shape[1] for s in none.scales] == [3, 12, 48]
    assert RealNVPConfig(**base) == RealNVPConfig(**base, first_split=0)


def test_channels_last_computes_the_same_function():
    """The trainer feeds NHWC batches to models that prefer them; nothing may change but speed."""
    m = perturbed(SMALL)
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 255
    ref = m.log_prob(x, generator=torch.Generator().manual_seed(1))
    m.to(memory_format=torch.channels_last)
    out = m.log_prob(x.contiguous(memory_format=torch.channels_last), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, ref, rtol=1e-5)
    z, _ = m(x.contiguous(memory_format=torch.channels_last))
    assert (m.inverse(z) - x).abs().max() < 1e-4


def test_log_det_stays_in_float32_under_mixed_precision():
    """bf16 autocast (what the trainer uses on CUDA), checked here with the CPU's autocast."""
    m = perturbed(SMALL)
    x = torch.randint(0, 256, (4, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float() / 255
    ref = m.log_prob(x, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, logdet = m(m.dequantize(x, torch.Generator().manual_seed(1)))
        out = m.log_prob(x, generator=torch.Generator().manual_seed(1))
    assert z.dtype == torch.float32 and logdet.dtype == torch.float32 and out.dtype == torch.float32
    assert torch.allclose(out, ref, rtol=2e-2)
    # each coupling's scale and shift come out of the bf16 network as float32
    h = torch.randn(4, 3, 8, 8)
    for layer, inp in ((m.scales[0].checker[0], h), (m.scales[0].channel[0], torch.randn(4, 6, 4, 4))):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s, t = layer.net(inp)
            y, ld = layer(h if inp is h else torch.nn.functional.pixel_unshuffle(h, 2))
        assert s.dtype == t.dtype == ld.dtype == y.dtype == torch.float32
