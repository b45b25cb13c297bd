"""One temperature per latent level: ``model.latent_levels`` lists the multi-scale flow's factored-out halves,
finest first, and ``model.sample(n, temperature=[...])`` scales each level's noise by its own temperature."""

import pytest
import torch

from genlab.cli import main
from genlab.errors import ConfigError
from genlab.explore import sample as explore_sample
from genlab.models import VAE, RealNVP, RealNVPConfig, VAEConfig

FLOWS = [
    RealNVPConfig(image_size=16, channels=1, num_scales=3, num_blocks=1, features=8),
    RealNVPConfig(image_size=16, channels=3, num_scales=3, num_blocks=1, features=8, first_split=1),
    RealNVPConfig(image_size=8, channels=3, num_scales=1, num_blocks=1, features=8),
]


def perturbed(cfg: RealNVPConfig) -> RealNVP:
    """A flow whose couplings are not the identity, so that a wrong level map cannot pass by accident."""
    torch.manual_seed(0)
    flow = RealNVP(cfg)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return flow.eval()


@pytest.mark.parametrize("cfg", FLOWS)
def test_a_list_of_equal_temperatures_gives_the_same_samples_as_the_single_value(cfg):
    flow = perturbed(cfg)
    for t in (0.0, 0.7, 1.0):
        one = flow.sample(6, t, generator=torch.Generator().manual_seed(3))
        per_level = flow.sample(6, [t] * len(flow.latent_levels), generator=torch.Generator().manual_seed(3))
        assert torch.equal(one, per_level)
        assert torch.equal(explore_sample(flow, 6, t, 3), explore_sample(flow, 6, (t,) * len(flow.latent_levels), 3))


def test_a_vae_has_one_level():
    vae = VAE(VAEConfig(image_size=16, latent_dim=8, width=8, max_width=16)).eval()
    assert vae.latent_levels == [(8,)]
    one = vae.sample(4, 0.8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(one, vae.sample(4, [0.8], generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("cfg", FLOWS)
def test_each_level_is_the_half_its_scale_factors_out(cfg):
    """Read each level's values where ``_flow`` factors them out (the last channel coupling of a splitting scale,
    the last checkerboard coupling of the final one) and find exactly them where ``level_index`` puts that level."""
    flow = perturbed(cfg)
    outputs = {}
    for i, sc in enumerate(flow.scales):
        layer = sc.checker[-1] if sc.last else sc.channel[-1]
        layer.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out[0]))
    x = torch.rand(1, cfg.channels, cfg.image_size, cfg.image_size) * 0.9 + 0.05
    with torch.no_grad():
        z, _ = flow(x)
    index = flow.level_index()
    assert index.shape == z.shape[1:]
    level = 0
    for i, sc in enumerate(flow.scales):
        if not (sc.last or sc.split):
            continue
        h = outputs[i][0]
        factored = h if sc.last else h[: h.shape[0] // 2]  # the first half of the channels leaves here
        assert tuple(factored.shape) == flow.latent_levels[level]
        assert torch.equal(torch.sort(z[0][index == level]).values, torch.sort(factored.flatten()).values)
        level += 1
    assert level == len(flow.latent_levels)
    assert sum(torch.Size(s).numel() for s in flow.latent_levels) == z[0].numel()


def test_cooling_only_the_coarsest_level_changes_only_its_noise():
    flow = perturbed(FLOWS[0])
    levels = len(flow.latent_levels)
    g = torch.Generator().manual_seed(0)
    unit = torch.randn(1, *flow.shape, generator=g)
    scale = flow.temperature_scale([1.0] * (levels - 1) + [0.0])
    coarsest = flow.level_index() == levels - 1
    assert torch.equal((unit * scale)[0][~coarsest], unit[0][~coarsest])
    assert ((unit * scale)[0][coarsest] == 0).all()


@pytest.mark.parametrize(
    "temperature, says",
    [([1.0, 1.0], "has 3 latent level(s), finest first (2×8×8, 4×4×4, 4×4×4): give 3 temperature(s), not 2"),
     ([1.0, -0.1, 1.0], "a temperature is a number from 0 to 5, got -0.1"),
     ([1.0, float("nan"), 1.0], "got nan"), (9.0, "got 9.0")],
)  # fmt: skip
def test_a_wrong_count_or_value_is_one_sentence(temperature, says):
    with pytest.raises(ConfigError, match=None) as e:
        perturbed(FLOWS[0]).sample(1, temperature)
    assert says in str(e.value)


def test_the_cli_takes_one_temperature_per_level(tmp_path, capsys):
    flow = perturbed(FLOWS[0])
    flow.save_pretrained(tmp_path / "flow")
    assert (
        main(
            ["sample", str(tmp_path / "flow"), "--n", "4", "--temperature", "1,1,0.5", "--out", str(tmp_path / "a.png")]
        )
        == 0
    )
    assert "T=1,1,0.5" in capsys.readouterr().out
    assert (
        main(["sample", str(tmp_path / "flow"), "--n", "4", "--temperature", "1,0.5", "--out", str(tmp_path / "b.png")])
        == 2
    )
    assert "give 3 temperature(s), not 2" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()
