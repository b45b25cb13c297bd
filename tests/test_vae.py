"""The VAE's likelihood, ELBO, IWAE bound, sampling and checkpoint format."""

import json
import math

import mpmath
import pytest
import torch

from genlab import CheckpointError, load_model
from genlab.distributions import coupled_channel_means, discretized_logistic_log_prob
from genlab.models import VAE, VAEConfig

mpmath.mp.dps = 60  # enough digits that the far tails do not cancel


def _hand_log_prob(k: int, mean: float, scale: float) -> float:
    """log P(pixel = k) for a logistic(mean, scale) discretized to 256 bins of [0, 1].

    Written as sigmoid(b) - sigmoid(a) = (e^b - e^a) / ((1 + e^a)(1 + e^b)) in 60-digit arithmetic,
    which neither cancels nor underflows in the tails.
    """
    mean, scale, half = mpmath.mpf(mean), mpmath.mpf(scale), mpmath.mpf(1) / 2
    a = ((k - half) / 255 - mean) / scale
    b = ((k + half) / 255 - mean) / scale
    if k == 0:
        p = mpmath.exp(b) / (1 + mpmath.exp(b))
    elif k == 255:
        p = 1 / (1 + mpmath.exp(a))
    else:
        p = (mpmath.exp(b) - mpmath.exp(a)) / ((1 + mpmath.exp(a)) * (1 + mpmath.exp(b)))
    return float(mpmath.log(p))


@pytest.mark.parametrize("mean,log_scale", [(0.5, -1.0), (0.02, -3.0), (0.97, -5.0), (0.3, -7.0)])
def test_discretized_logistic_is_a_distribution_over_256_values(mean, log_scale):
    x = torch.arange(256, dtype=torch.float64) / 255
    lp = discretized_logistic_log_prob(
        x, torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)
    )
    assert torch.exp(lp).sum().item() == pytest.approx(1.0, abs=1e-6)
    for k in (0, 1, 77, 254, 255):
        assert lp[k].item() == pytest.approx(_hand_log_prob(k, mean, math.exp(log_scale)), rel=1e-6, abs=1e-9)


def test_coupled_channels_are_a_distribution_over_every_colour_of_a_pixel():
    """p(r) p(g | r) p(b | r, g) sums to one over all 256^3 colours, and each factor is the hand-computed
    discretized logistic at the shifted mean."""
    mean = torch.tensor([0.8, 0.6, 0.2], dtype=torch.float64)
    log_scale = torch.tensor([-2.0, -2.5, -3.0], dtype=torch.float64)
    coeffs = torch.tensor([0.7, -0.4, 0.5], dtype=torch.float64)
    levels = torch.arange(256, dtype=torch.float64) / 255
    g, b = torch.meshgrid(levels, levels, indexing="ij")
    total = 0.0
    for r in levels:  # one red level at a time: 65,536 (g, b) pairs
        x = torch.stack([torch.full_like(g, r.item()), g, b]).reshape(1, 3, 256, 256)
        m = coupled_channel_means(x, mean.view(1, 3, 1, 1).expand(1, 3, 256, 256), coeffs.view(1, 3, 1, 1))
        lp = discretized_logistic_log_prob(x, m, log_scale.view(1, 3, 1, 1)).sum(1)
        total += torch.exp(lp).sum().item()
    assert total == pytest.approx(1.0, abs=1e-9)
    x = torch.tensor([40, 200, 90], dtype=torch.float64).view(1, 3, 1, 1) / 255
    m = coupled_channel_means(x, mean.view(1, 3, 1, 1), coeffs.view(1, 3, 1, 1)).flatten()
    dr, dg = 40 / 255 - 0.8, 200 / 255 - 0.6
    assert m.tolist() == pytest.approx([0.8, 0.6 + 0.7 * dr, 0.2 - 0.4 * dr + 0.5 * dg])
    s = torch.exp(log_scale)
    lp = discretized_logistic_log_prob(x, m.view(1, 3, 1, 1), log_scale.view(1, 3, 1, 1)).flatten()
    for c, k in enumerate((40, 200, 90)):
        assert lp[c].item() == pytest.approx(_hand_log_prob(k, m[c].item(), s[c].item()), rel=1e-9)


def test_a_coupled_vae_shows_the_same_mean_image_and_refuses_grey_images(pixels):
    torch.manual_seed(0)
    vae = VAE(VAEConfig(image_size=8, channels=3, latent_dim=3, width=4, max_width=8, coupled_channels=True)).eval()
    z = torch.randn(2, 3)
    mean, _, coeffs = vae.decoder(z)
    assert coeffs.shape == (2, 3, 8, 8) and coeffs.abs().max() < 1
    assert torch.equal(vae.generate(z), mean)  # the image shown is the means, unshifted
    x = torch.rand(2, 3, 8, 8).mul(255).round().div(255)
    loss, metrics = vae.loss(x)
    assert torch.isfinite(loss) and metrics["bpd"] > 0
    with pytest.raises(ValueError, match="needs RGB"):
        VAEConfig(image_size=8, channels=1, coupled_channels=True)


def test_elbo_and_bits_per_dim_match_a_hand_computation(tiny_vae, pixels):
    m = tiny_vae
    terms = m.elbo_terms(pixels, generator=torch.Generator().manual_seed(7))
    _, metrics = m.loss(pixels, generator=torch.Generator().manual_seed(7))

    # independently: same noise, then per-pixel probabilities and the KL with Python floats
    mean_z, logvar = m.encoder(pixels)
    eps = torch.randn(mean_z.shape, generator=torch.Generator().manual_seed(7))
    z = mean_z + torch.exp(0.5 * logvar) * eps
    mu_px, log_s, _ = m.decoder(z)
    D = 64
    bounds = []
    for b in range(len(pixels)):
        recon = -sum(
            _hand_log_prob(
                round(pixels[b].flatten()[i].item() * 255),
                mu_px[b].flatten()[i].item(),
                math.exp(log_s[b].flatten()[i].item()),
            )
            for i in range(D)
        )
        kl = sum(0.5 * (mu**2 + math.exp(lv) - 1 - lv) for mu, lv in zip(mean_z[b].tolist(), logvar[b].tolist()))
        assert terms.recon_nll[b].item() == pytest.approx(recon, rel=1e-5)
        assert terms.kl[b].item() == pytest.approx(kl, rel=1e-5, abs=1e-7)
        bounds.append(recon + kl)
    assert metrics["bpd"].item() == pytest.approx(sum(bounds) / len(bounds) / (D * math.log(2)), rel=1e-5)
    assert metrics["loss"].item() == pytest.approx(metrics["bpd"].item(), rel=1e-6)  # beta = 1


def test_beta_weights_only_the_training_loss(pixels):
    torch.manual_seed(0)
    m = VAE(VAEConfig(image_size=8, channels=1, latent_dim=3, width=4, beta=4.0)).eval()
    loss, met = m.loss(pixels, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx((met["recon_bpd"] + 4 * met["kl_bpd"]).item(), rel=1e-5)
    assert met["bpd"].item() == pytest.approx((met["recon_bpd"] + met["kl_bpd"]).item(), rel=1e-5)


def test_iwae_with_one_sample_is_the_elbo(tiny_vae, pixels):
    m = tiny_vae
    iwae1 = m.nll_bpd(pixels, k=1, generator=torch.Generator().manual_seed(3))
    t = m.elbo_terms(pixels, generator=torch.Generator().manual_seed(3), analytic_kl=False)
    assert torch.allclose(iwae1, t.nll_bound / (64 * math.log(2)), rtol=1e-6)
    # and its average over many draws is the closed-form-KL ELBO
    g = torch.Generator().manual_seed(4)
    draws = torch.stack([m.nll_bpd(pixels, k=1, generator=g) for _ in range(2000)])
    analytic = m.elbo_terms(pixels, generator=torch.Generator().manual_seed(5)).kl
    mc_kl_free = m.elbo_terms(pixels, generator=torch.Generator().manual_seed(5), analytic_kl=False)
    # same recon sample, different KL estimator: compare expectations of the whole bound
    se = draws.std(0) / math.sqrt(len(draws))
    expected = torch.stack([m.elbo_terms(pixels, generator=g).nll_bound for _ in range(2000)]).mean(0) / (
        64 * math.log(2)
    )
    assert ((draws.mean(0) - expected).abs() < 5 * se + 1e-6).all()
    assert analytic.shape == mc_kl_free.kl.shape


def test_iwae_bound_tightens_with_k(tiny_vae, pixels):
    # a posterior much narrower than the true one, so that importance sampling has work to do
    with torch.no_grad():
        tiny_vae.encoder.head.bias[3:] = -4.0
    g = torch.Generator().manual_seed(11)
    est = {k: torch.stack([tiny_vae.nll_bpd(pixels, k=k, generator=g) for _ in range(200)]) for k in (1, 10, 100)}
    means = {k: v.mean().item() for k, v in est.items()}
    se = {k: v.mean(1).std().item() / math.sqrt(len(v)) for k, v in est.items()}
    assert means[1] - means[10] > 3 * (se[1] + se[10])
    assert means[10] - means[100] > 3 * (se[10] + se[100])


def test_temperature(tiny_vae):
    a = tiny_vae.sample(4, temperature=0.0, generator=torch.Generator().manual_seed(1))
    b = tiny_vae.sample(4, temperature=0.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(a[0], a[3])
    assert torch.allclose(a[:1], tiny_vae.decode(torch.zeros(1, 3)))
    # temperature scales the prior's standard deviation: T=0.5 decodes 0.5 * the T=1 latents
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(9))
    half = tiny_vae.sample(4, temperature=0.5, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(half, tiny_vae.decode(0.5 * z))


def test_decoder_output_is_in_the_data_range(tiny_vae):
    out = tiny_vae.decode(50 * torch.randn(16, 3))
    assert out.min() >= 0 and out.max() <= 1


def test_interpolation_endpoints_and_slerp(tiny_vae):
    z0, z1 = torch.randn(3), torch.randn(3)
    for method in ("linear", "slerp"):
        path = tiny_vae.interpolate(z0, z1, steps=5, method=method)
        assert path.shape == (5, 1, 8, 8)
        assert torch.allclose(path[0], tiny_vae.decode(z0[None])[0], atol=1e-6)
        assert torch.allclose(path[-1], tiny_vae.decode(z1[None])[0], atol=1e-6)
    with pytest.raises(ValueError, match="linear"):
        tiny_vae.interpolate(z0, z1, method="cubic")


def test_save_reload_gives_identical_outputs(tiny_vae, pixels, tmp_path):
    tiny_vae.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    m2 = load_model(tmp_path / "m")
    assert isinstance(m2, VAE) and m2.config == tiny_vae.config
    l1, _ = tiny_vae.loss(pixels, generator=torch.Generator().manual_seed(0))
    l2, _ = m2.loss(pixels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(l1, l2)
    s1 = tiny_vae.sample(5, 0.8, generator=torch.Generator().manual_seed(0))
    s2 = m2.sample(5, 0.8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s1, s2)


def test_mismatched_and_corrupt_checkpoints_give_clear_errors(tiny_vae, tmp_path):
    d = tmp_path / "m"
    tiny_vae.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())

    (d / "config.json").write_text(json.dumps({**cfg, "latent_dim": 5}))
    with pytest.raises(CheckpointError, match=r"shape .* expects"):
        load_model(d)

    (d / "config.json").write_text(json.dumps({**cfg, "image_size": 16}))  # one more block than stored
    with pytest.raises(CheckpointError, match="unexpected tensors|missing tensors"):
        load_model(d)

    (d / "config.json").write_text(json.dumps({**cfg, "flux_capacitor": 1}))
    with pytest.raises(CheckpointError, match="flux_capacitor"):
        load_model(d)

    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "gan"}))
    with pytest.raises(CheckpointError, match="unknown model type 'gan'"):
        load_model(d)

    (d / "config.json").write_text(json.dumps(cfg))
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(d)

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_vae_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        VAEConfig(image_size=48)


def test_the_likelihood_stays_in_float32_under_mixed_precision(tiny_vae, pixels):
    """bf16 autocast (what the trainer uses on CUDA), checked here with the CPU's autocast."""
    ref = tiny_vae.elbo_terms(pixels, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        t = tiny_vae.elbo_terms(pixels, generator=torch.Generator().manual_seed(0))
    assert t.recon_nll.dtype == torch.float32 and t.kl.dtype == torch.float32
    assert torch.allclose(t.nll_bound, ref.nll_bound, rtol=2e-2)


def test_channels_last_computes_the_same_function(tiny_vae, pixels):
    ref = tiny_vae.elbo_terms(pixels, generator=torch.Generator().manual_seed(0)).nll_bound
    tiny_vae.to(memory_format=torch.channels_last)
    out = tiny_vae.elbo_terms(
        pixels.contiguous(memory_format=torch.channels_last), generator=torch.Generator().manual_seed(0)
    ).nll_bound
    assert torch.allclose(out, ref, rtol=1e-5)
