"""Image restoration (benchmark_inverse_problems): operators, unrolled
dictionary denoisers, warm-started plug-and-play, GLOW-Prox and bad input."""
import numpy as np
import pytest
import torch

from solvers_common.data.restoration import load_restoration_images
from solvers_common.inverse_problems import (
    ConvolutionalDictionaryDenoiser,
    DictionaryPnP,
    Glow,
    GlowProx,
    RestorationTrainer,
    UnrolledProximalGradient,
    iterates_of,
    make_physics,
    measure,
    operator_norm,
    sparse_coding_fista,
)


def generator(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("degradation", ["inpainting", "inpainting_center", "blur", "denoising"])
def test_operator_adjoint(degradation):
    physics = make_physics(degradation, (2, 12, 12), mask_ratio=0.3, blur_sigma=1.5,
                           generator=generator(0))
    x = torch.randn(3, 2, 12, 12, generator=generator(1), dtype=torch.float64)
    y = torch.randn(3, 2, 12, 12, generator=generator(2), dtype=torch.float64)
    lhs = (physics.A(x) * y).sum()
    rhs = (x * physics.A_adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    assert operator_norm(physics, (2, 12, 12)) <= 1 + 1e-6


@pytest.mark.parametrize("mode", ["synthesis", "analysis"])
def test_unrolled_dictionary_denoiser_reaches_fista_solution(mode):
    denoiser = ConvolutionalDictionaryDenoiser(4, 3, n_channels=1, lmbd=0.1, n_layers=3000,
                                               mode=mode, generator=generator(0),
                                               dtype=torch.float64)
    x = torch.rand(2, 1, 10, 10, generator=generator(1), dtype=torch.float64)
    with torch.no_grad():
        unrolled, _ = denoiser(x)
        reference = sparse_coding_fista(x, denoiser.weight, 0.1, mode=mode, n_iter=5000)
    assert torch.allclose(unrolled, reference, atol=1e-7)
    # A few layers are not there yet.
    with torch.no_grad():
        few, _ = denoiser(x, n_layers=2)
    assert (few - reference).abs().max() > 1e-4


def pnp_final(mode, n_layers, warm_start, n_iterations):
    denoiser = ConvolutionalDictionaryDenoiser(4, 3, n_channels=1, lmbd=0.05, mode=mode,
                                               generator=generator(0), dtype=torch.float64)
    physics = make_physics("inpainting", (1, 8, 8), mask_ratio=0.3, generator=generator(1))
    clean = torch.rand(1, 1, 8, 8, generator=generator(2), dtype=torch.float64)
    y = measure(physics, clean, 0.0)
    restorer = DictionaryPnP(denoiser, n_iterations, step=1.0, n_layers=n_layers,
                             warm_start=warm_start)
    with torch.no_grad():
        iterates = iterates_of(restorer, y, physics)
    return iterates[-1], float((iterates[-1] - iterates[-2]).abs().max())


@pytest.mark.parametrize("mode", ["synthesis", "analysis"])
def test_warm_started_pnp_fixed_point_does_not_depend_on_layers(mode):
    """Kowalski et al. 2024, Propositions 4.2 and 4.4: with warm start, the
    PnP fixed point is the same with 1 and 20 inner layers; without, not."""
    one, change_one = pnp_final(mode, 1, True, 6000)
    twenty, change_twenty = pnp_final(mode, 20, True, 1000)
    assert change_one < 1e-9 and change_twenty < 1e-7  # converged
    assert torch.allclose(one, twenty, atol=1e-5)
    # Cold-started, L = 1 settles (or cycles) away from it.
    cold_one, _ = pnp_final(mode, 1, False, 600)
    cold_twenty, _ = pnp_final(mode, 20, False, 600)
    assert (cold_one - twenty).abs().max() > 1e-3
    assert (cold_one - cold_twenty).abs().max() > 1e-3


def test_glow_is_invertible():
    torch.manual_seed(0)
    glow = Glow(1, n_levels=2, depth=2, hidden_channels=8)
    x = torch.rand(4, 1, 8, 8, generator=generator(1))
    glow.encode(x)  # ActNorm's data-dependent initialization
    with torch.no_grad():  # couplings away from their zero initialization
        for parameter in glow.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator(2)))
        latents = glow.encode(x)
        assert [z.shape[1:] for z in latents] == [(2, 4, 4), (8, 2, 2)]
        assert (glow.decode(latents) - x).abs().max() < 1e-5
    prox = GlowProx(1, 1, 1.0, n_levels=1, depth=1, hidden_channels=4)
    prox.prior_weights.data.zero_()
    with torch.no_grad():
        prox.flows[0].encode(x)  # ActNorm initialization
        assert (prox.prox(0, x)[0] - x).abs().max() < 1e-5


def violation_rate(trainer, network, physics, clean):
    with torch.no_grad():
        iterates = iterates_of(network, trainer.X, physics)
        return float((trainer.constraints(iterates, trainer.X, clean) > 0).float().mean())


@pytest.mark.parametrize("make", [
    lambda: UnrolledProximalGradient(4, 1, 1.0, width=8),
    lambda: GlowProx(3, 1, 1.0, n_levels=1, depth=1, hidden_channels=4),
], ids=["unrolled_pgd", "glow_prox"])
def test_constrained_training_lowers_violation_rate(make):
    clean = torch.rand(16, 1, 8, 8, generator=generator(1))
    physics = make_physics("inpainting", (1, 8, 8), 0.5, generator=generator(2)).to(
        torch.float32)
    rates = {}
    for constrained in (False, True):
        torch.manual_seed(0)
        network = make()
        trainer = RestorationTrainer(network, physics, clean, 0.02, 1.0,
                                     constrained=constrained, lr_dual=1.0, batch_size=8,
                                     generator=generator(3))
        trainer.train(40)
        rates[constrained] = violation_rate(trainer, network, physics, clean)
    assert rates[True] < rates[False]


@pytest.mark.parametrize("arguments, parameter", [
    (dict(degradation="inpainting", mask_ratio=0.0), "mask_ratio"),
    (dict(degradation="inpainting_center", mask_ratio=1.0), "mask_ratio"),
    (dict(degradation="denoising", noise_level=-0.1), "noise_level"),
    (dict(degradation="blur", blur_sigma=0.0), "blur_sigma"),
    (dict(degradation="superresolution"), "degradation"),
])
def test_bad_degradation(arguments, parameter):
    with pytest.raises(ValueError, match=parameter):
        make_physics(image_shape=(1, 8, 8), **arguments)


def test_image_smaller_than_crop_or_atom():
    with pytest.raises(ValueError, match="crop_size"):
        load_restoration_images("digits", 9, 2, 2, generator=np.random.default_rng(0))
    denoiser = ConvolutionalDictionaryDenoiser(2, 5)
    with pytest.raises(ValueError, match="kernel_size"):
        denoiser(torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="n_levels"):
        Glow(1, n_levels=2).encode(torch.rand(1, 1, 6, 6))


def test_offline_sources_and_missing_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train, test = load_restoration_images("skimage", 16, 5, 3, color=True, generator=rng)
    assert train.shape == (5, 3, 16, 16) and test.shape == (3, 3, 16, 16)
    assert 0 <= train.min() and train.max() <= 1
    train, test = load_restoration_images("faces", 24, 4, 2, generator=rng)
    assert train.shape == (4, 1, 24, 24)
    monkeypatch.setenv("LEARNOPT_DATA", str(tmp_path))
    from solvers_common.data import DataUnavailable
    for source in ("bsds500", "celeba_hq"):
        with pytest.raises(DataUnavailable) as error:
            load_restoration_images(source, 16, 2, 2)
        assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)
