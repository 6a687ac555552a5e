"""Image restoration (benchmark_inverse_problems): operators, unrolled
dictionary denoisers, warm-started plug-and-play, GLOW-Prox and bad input."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from benchopt_runs import run_with_default_limits

from solvers_common.data import restoration
from solvers_common.data.restoration import load_restoration_images
from solvers_common.inverse_problems import (
    ConvolutionalDictionaryDenoiser,
    DictionaryPnP,
    Glow,
    GlowProx,
    ProximalGradient,
    RestorationTrainer,
    UnrolledProximalGradient,
    iterates_of,
    make_physics,
    measure,
    operator_norm,
    sparse_coding_fista,
)
from solvers_common.inverse_problems.metrics import psnr as image_psnr
from solvers_common.inverse_problems.networks import BINOMIAL_3X3, SoftClampedScale


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


def test_warm_started_analysis_pnp_caps_the_dual_step():
    """Warm-started with one layer, the analysis PnP is Loris & Verhoeven's
    primal-dual algorithm, stable for a dual step <= 1 / ||W||^2. A
    checkerboard atom, whose gain peaks where the blur lets almost nothing
    through, makes the denoiser's own step 1.8 / ||W||^2 cycle; capped at 1,
    one layer reaches the fixed point of 20 warm-started layers."""
    denoiser = ConvolutionalDictionaryDenoiser(1, 2, n_channels=1, lmbd=0.05, mode="analysis",
                                               generator=generator(0), dtype=torch.float64)
    with torch.no_grad():
        denoiser.weight.copy_(torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]]) / 2)
    physics = make_physics("blur", (1, 8, 8), blur_sigma=1.0)
    y = measure(physics, torch.rand(1, 1, 8, 8, generator=generator(2), dtype=torch.float64), 0.0)
    with torch.no_grad():
        one = iterates_of(DictionaryPnP(denoiser, 1000, 1.0, n_layers=1), y, physics)
        twenty = iterates_of(DictionaryPnP(denoiser, 1000, 1.0, n_layers=20), y, physics)
        # The same loop with the denoiser's training step, written out.
        x, code = physics.A_adjoint(y), None
        for _ in range(1000):
            x_previous = x
            x, code = denoiser(x - physics.A_adjoint(physics.A(x) - y), code, n_layers=1)
    assert torch.allclose(one[-1], twenty[-1], atol=1e-8)
    assert (x - x_previous).abs().max() > 1e-2  # cycles


def test_pnp_lmbd_overrides_the_training_one():
    denoiser = ConvolutionalDictionaryDenoiser(4, 3, n_channels=1, lmbd=0.05, mode="analysis",
                                               generator=generator(0), dtype=torch.float64)
    x = torch.rand(2, 1, 10, 10, generator=generator(1), dtype=torch.float64)
    with torch.no_grad():
        exact = sparse_coding_fista(x, denoiser.weight, 0.1, mode="analysis", n_iter=5000)
        unrolled, _ = denoiser(x, n_layers=3000, lmbd=0.1)
    assert torch.allclose(unrolled, exact, atol=1e-7)
    with pytest.raises(ValueError, match="lmbd"):
        DictionaryPnP(denoiser, 10, 1.0, lmbd=-1.0)


@pytest.mark.parametrize("scale_clamp", [None, 2.0])
def test_glow_is_invertible(scale_clamp):
    torch.manual_seed(0)
    glow = Glow(1, n_levels=2, depth=2, hidden_channels=8, scale_clamp=scale_clamp)
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


def test_soft_clamped_scale_bounds_the_log_scales_only():
    """normflows' couplings read shifts from the even channels of their
    parameter map and log-scales from the odd ones: only the latter are
    clamped, to clamp * tanh(s / clamp)."""
    raw = torch.tensor([[[[0.3]], [[-50.0]], [[7.0]], [[0.5]]]])  # shift, s, shift, s
    clamped = SoftClampedScale(lambda x: raw, clamp=2.0)(None)
    assert torch.equal(clamped[:, 0::2], raw[:, 0::2])
    assert torch.allclose(clamped[:, 1::2], 2.0 * torch.tanh(raw[:, 1::2] / 2.0))
    assert clamped[:, 1::2].abs().max() <= 2.0
    # A Glow built with it: every coupling's map is wrapped.
    glow = Glow(1, n_levels=2, depth=2, hidden_channels=4, scale_clamp=2.0)
    couplings = [block.flows[0].flows[1] for blocks in glow.levels for block in blocks]
    assert len(couplings) == 4
    assert all(isinstance(c.param_map, SoftClampedScale) for c in couplings)
    with pytest.raises(ValueError, match="scale_clamp"):
        Glow(1, scale_clamp=0.0)


def violation_rate(trainer, network, physics, clean):
    with torch.no_grad():
        iterates = iterates_of(network, trainer.X, physics)
        return float((trainer.constraints(iterates, trainer.X, clean) > 0).float().mean())


@pytest.mark.parametrize("make, n_steps", [
    (lambda: UnrolledProximalGradient(4, 1, 1.0, width=8, prox_init="identity"), 40),
    # From the smoothing start, after 40 steps both violate one of the 3
    # constraints (by 0.129 without, 0.037 with the constraints); after 120,
    # 1 of 3 against none.
    (lambda: UnrolledProximalGradient(4, 1, 1.0, width=8), 120),
    (lambda: GlowProx(3, 1, 1.0, n_levels=1, depth=1, hidden_channels=4), 40),
], ids=["unrolled_pgd_identity_init", "unrolled_pgd", "glow_prox"])
def test_constrained_training_lowers_violation_rate(make, n_steps):
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
        trainer.train(n_steps)
        rates[constrained] = violation_rate(trainer, network, physics, clean)
    assert rates[True] < rates[False]


def restoration_setting(network, dtype=torch.float64, **options):
    """A RestorationTrainer of ``network`` on 8 random 8 x 8 images, half the
    pixels missing, and the untrained network's iterates on its measurements."""
    clean = torch.rand(8, 1, 8, 8, generator=generator(1), dtype=dtype)
    physics = make_physics("inpainting", (1, 8, 8), 0.5, generator=generator(2)).to(dtype)
    trainer = RestorationTrainer(network, physics, clean, 0.02, 1.0, batch_size=4,
                                 generator=generator(3), **options)
    with torch.no_grad():
        iterates = iterates_of(network, trainer.X, physics)
    return trainer, physics, clean, iterates


@pytest.mark.parametrize("make, dtype, tolerance", [
    (lambda: UnrolledProximalGradient(4, 1, 1.0, width=4).to(torch.float64),
     torch.float64, 1e-12),
    (lambda: GlowProx(3, 1, 1.0, n_levels=1, depth=1, hidden_channels=4), torch.float32, 1e-5),
], ids=["unrolled_pgd", "glow_prox"])
def test_restoration_constraints_against_their_definition(make, dtype, tolerance):
    """Hadou, NaderiAlizadeh & Ribeiro (2024), Section 5.2: with g_l the
    batch mean of ||grad_x f(x_l)|| = ||A^T (A x_l - y)|| (times 200, which
    cancels) and, for GLOW-Prox, h_l that of ||grad_z f(z_l)|| = ||z_l||, the
    constraints are c_l = g_{l+1} / g_l - (1 - epsilon) (and h_{l+1} / h_l -
    (1 - epsilon)) for l = 1 .. L-1, written out here; the Lagrangian adds
    sum nu_l c_l to the loss. The ratios are far from 1 (the inverted ratio
    differs by more than 1e-2), so that the test tells them apart."""
    torch.manual_seed(0)
    network = make()
    epsilon = 0.05
    trainer, physics, clean, iterates = restoration_setting(network, dtype, epsilon=epsilon,
                                                            constrained=True)
    y = trainer.X
    with torch.no_grad():
        g = torch.tensor([float(torch.linalg.vector_norm(
            physics.A_adjoint(physics.A(x) - y).reshape(len(y), -1), dim=1).mean())
            for x in iterates[1:]], dtype=torch.float64)
        columns = [g]
        if isinstance(network, GlowProx):
            assert len(network.latents) == network.n_layers
            columns.append(torch.tensor([float(torch.linalg.vector_norm(
                z.reshape(len(y), -1), dim=1).mean()) for z in network.latents],
                dtype=torch.float64))
        norms = torch.stack(columns, dim=1)  # (L, spaces)
        expected = norms[1:] / norms[:-1] - (1 - epsilon)
        inverted = norms[:-1] / norms[1:] - (1 - epsilon)
        assert float((expected - inverted).abs().max()) > 1e-2
        constraints = trainer.constraints(iterates, y, clean)
        assert constraints.shape == (network.n_layers - 1, len(columns))
        torch.testing.assert_close(constraints.double(), expected, rtol=tolerance,
                                   atol=tolerance)
        # The Lagrangian of a batch: the data term plus sum nu_l c_l.
        trainer.multipliers = torch.linspace(0.5, 2.0, constraints.numel(),
                                             dtype=dtype).reshape(constraints.shape)
        loss = trainer.batch_loss(iterates, y, clean)
        data = ((iterates[-1] - clean) ** 2).sum(dim=(1, 2, 3)).mean()
        lagrangian = data.double() + (trainer.multipliers.double() * expected).sum()
        torch.testing.assert_close(loss.double(), lagrangian, rtol=tolerance, atol=tolerance)
        torch.testing.assert_close(trainer.last_constraints.double(), expected,
                                   rtol=tolerance, atol=tolerance)


def test_restoration_noise_injection_follows_its_law():
    """The documented law (RestorationTrainer, the authors' noisyOuts): the
    iterates x_0 .. x_{L-2} get Gaussian noise rescaled to norm 1 / (k + 1)
    per image, then are clamped to [0, 1]; x_{L-1} and x_L are left alone.
    Images at 0.5 keep every perturbed pixel inside [0, 1] (the largest
    perturbation of a pixel is below 0.5), so that the norms are exact; the
    perturbation is the trainer's generator's next Gaussian draw, normalized."""
    n_layers = 4
    network = UnrolledProximalGradient(n_layers, 1, 1.0, width=4).to(torch.float64)
    trainer, _, _, _ = restoration_setting(network, noise_injection=True)
    inject = trainer._noise(trainer.X)
    x = torch.full((4, 1, 16, 16), 0.5, dtype=torch.float64)
    for index in range(n_layers + 1):
        state = trainer.generator.get_state()
        perturbed = inject(index, x)
        if index > n_layers - 2:
            assert perturbed is x or torch.equal(perturbed, x)
            continue
        assert float((perturbed - x).abs().max()) < 0.5  # no pixel clamped
        norms = torch.linalg.vector_norm((perturbed - x).reshape(4, -1), dim=1)
        torch.testing.assert_close(norms, torch.full((4,), 1 / (index + 1), dtype=x.dtype),
                                   rtol=1e-12, atol=1e-12)
        draw = torch.randn(x.shape, generator=torch.Generator().set_state(state),
                           dtype=x.dtype)
        direction = draw / torch.linalg.vector_norm(draw.reshape(4, -1), dim=1)[:, None, None,
                                                                                None]
        torch.testing.assert_close(perturbed, (x + direction / (index + 1)).clamp(0, 1),
                                   rtol=0, atol=1e-12)
    # Off, there is no hook.
    trainer, _, _, _ = restoration_setting(network, noise_injection=False)
    assert trainer._noise(trainer.X) is None


def test_restoration_noise_injection_changes_the_trained_weights():
    """Three Adam steps from the same weights and batches: the same weights
    twice without noise injection, other weights with it."""
    def trained(noise_injection):
        torch.manual_seed(0)
        network = UnrolledProximalGradient(4, 1, 1.0, width=4).to(torch.float64)
        trainer, _, _, _ = restoration_setting(network, noise_injection=noise_injection)
        trainer.train(3)
        return torch.cat([parameter.detach().flatten() for parameter in network.parameters()])

    clean = trained(False)
    assert torch.equal(clean, trained(False))
    assert float((trained(True) - clean).abs().max()) > 1e-6


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
    train, test, validation = load_restoration_images("skimage", 16, 5, 3, color=True,
                                                      generator=rng, n_validation=2)
    assert train.shape == (5, 3, 16, 16) and test.shape == (3, 3, 16, 16)
    assert validation.shape == (2, 3, 16, 16)
    assert 0 <= train.min() and train.max() <= 1
    images = load_restoration_images("faces", 24, 4, 2, generator=rng)
    assert images.train.shape == (4, 1, 24, 24) and images.validation.shape == (1, 1, 24, 24)
    monkeypatch.setenv("LEARNOPT_DATA", str(tmp_path))
    from solvers_common.data import DataUnavailable
    for source in ("bsds500", "celeba_hq"):
        with pytest.raises(DataUnavailable) as error:
            load_restoration_images(source, 16, 2, 2)
        assert "\n" not in str(error.value) and str(tmp_path) in str(error.value)


def test_faces_source_uses_the_faces_only():
    import skimage.data

    # lfw_subset holds 100 faces, then 100 background patches.
    crops = restoration.center_crops(
        skimage.data.lfw_subset().astype(np.float32)[:, None], 24)[:, 0]
    images = load_restoration_images("faces", 24, 70, 26, generator=np.random.default_rng(0),
                                     n_validation=4)
    assert images.train.shape[0] == 70 and images.test.shape[0] == 26

    def index(image):
        """Which lfw_subset image a loaded one is (by its centre crop)."""
        return [i for i, crop in enumerate(crops) if np.array_equal(image[0], crop)][0]

    seen = [index(image) for part in images for image in part]
    assert max(seen) < 100 and len(set(seen)) == 100
    with pytest.raises(ValueError, match="n_train"):
        load_restoration_images("faces", 24, 71, 2, generator=np.random.default_rng(0))


# -- Validation split and fair comparisons (issue 23) ------------------------
def numbered_picture(first, shape):
    """A picture whose pixel values are distinct ids from ``first`` (float64:
    exact in the loader's float32 up to 2^24)."""
    return first + np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


def test_validation_crops_share_no_pixel_with_training_and_test_crops(monkeypatch):
    """Crop sources: every pixel of every picture has its own value, so a
    crop's values say which pixels it took. Validation crops come from bands
    that no training crop touches (many training crops cover the rest of the
    pictures), and test crops from other pictures."""
    import skimage.data

    first = 0
    for name in restoration.SKIMAGE_TRAIN + restoration.SKIMAGE_TEST:
        picture = numbered_picture(first, (40, 48))
        first += picture.size
        monkeypatch.setattr(skimage.data, name, lambda picture=picture: picture)
    images = load_restoration_images("skimage", 8, 2000, 20, generator=np.random.default_rng(0),
                                     n_validation=30)
    train, test, validation = (set(split.ravel().tolist()) for split in images)
    assert validation and not validation & train and not validation & test
    assert not train & test
    # The training crops do cover the pictures but for their bands: 12 bands
    # of 8 rows of the 40 x 48 pictures are a fifth of their pixels.
    n_train_pixels = len(restoration.SKIMAGE_TRAIN) * 40 * 48
    assert len(train) > 0.75 * n_train_pixels
    # The same seed, the same splits; another seed, other validation crops.
    again = load_restoration_images("skimage", 8, 2000, 20, generator=np.random.default_rng(0),
                                    n_validation=30)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    other = load_restoration_images("skimage", 8, 2000, 20, generator=np.random.default_rng(1),
                                    n_validation=30)
    assert not np.array_equal(other.validation, images.validation)
    with pytest.raises(ValueError, match="crop_size"):
        # 90 > half the 172 rows of scikit-image's "text" picture.
        monkeypatch.undo()
        load_restoration_images("skimage", 90, 2, 2)
    with pytest.raises(ValueError, match="n_validation"):
        load_restoration_images("skimage", 8, 2, 2, n_validation=0)


def test_validation_images_are_held_out_images_that_are_not_test_images(monkeypatch):
    """Image sources: each image is filled with its index; validation images
    come from the held-out split and are neither training nor test images,
    and the training and test images are those drawn without validation."""
    n_train_split, n_split = 30, 50

    def fake_digits(train=None):
        indices = np.arange(n_train_split) if train else np.arange(n_train_split, n_split)
        images = np.broadcast_to(indices[:, None, None], (len(indices), 8, 8))
        return images.astype(np.float32), indices
    monkeypatch.setattr(restoration, "load_digits_images", fake_digits)
    images = load_restoration_images("digits", 8, 10, 5, generator=np.random.default_rng(0),
                                     n_validation=12)
    train, test, validation = (set(split[:, 0, 0, 0].tolist()) for split in images)
    assert len(validation) == 12 and validation <= set(range(n_train_split, n_split))
    assert not validation & test and not validation & train and len(test) == 5
    rng = np.random.default_rng(0)
    expected_train = np.sort(rng.choice(n_train_split, size=10, replace=False))
    expected_test = n_train_split + np.sort(rng.choice(n_split - n_train_split, 5, replace=False))
    assert train == set(expected_train.tolist()) and test == set(expected_test.tolist())
    with pytest.raises(ValueError, match="n_validation=16"):
        load_restoration_images("digits", 8, 10, 5, n_validation=16)  # 20 - 5 left


def quick_objective(**dataset_parameters):
    """The benchmark's dataset and objective, set as benchopt sets them."""
    benchmark = Benchmark(BENCHMARK)
    parameters = dict(source="digits", crop_size=8, n_train=16, n_test=3, n_validation=4,
                      degradation="inpainting", mask_ratio=0.5, noise_level=0.05)
    dataset = next(d for d in benchmark.get_datasets() if d.name == "images").get_instance(
        **{**parameters, **dataset_parameters})
    objective = benchmark.get_benchmark_objective().get_instance(n_iterations=5,
                                                                 noise_levels="")
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective._set_dataset(dataset)
    return benchmark, dataset, objective


def test_validation_psnr_is_the_psnr_of_the_validation_restorations():
    benchmark, dataset, objective = quick_objective()
    data = dataset.get_data()
    validation = torch.as_tensor(data["validation_images"], dtype=torch.float64)
    assert torch.equal(objective.validation_images, validation)
    physics, y = objective.physics, objective.y_validation
    # Measured like the test images: A x plus fresh noise of the noise level.
    noise = y - physics.A(validation)
    assert 0.04 < float(noise.std()) < 0.06 and abs(float(noise.mean())) < 0.01
    assert not torch.allclose(noise[:1], (objective.y_test - physics.A(objective.test_images))[:1])
    restorer = ProximalGradient(torch.nn.Identity(), 5, 0.7)
    metrics = objective.evaluate_result(restorer=restorer)
    with torch.no_grad():
        direct = image_psnr(restorer(y, physics), validation).mean()
        start = image_psnr(physics.A_adjoint(objective.y_test), objective.test_images).mean()
    assert metrics["validation_psnr"] == pytest.approx(float(direct), rel=1e-12)
    assert metrics["validation_psnr"] != pytest.approx(metrics["psnr"], rel=1e-3)
    assert metrics["psnr_input"] == pytest.approx(float(start), rel=1e-12)
    assert metrics["psnr_input"] == pytest.approx(metrics["psnr_iter_0"], rel=1e-12)
    # The tuner reads the declaration from the source, without importing it.
    import ast
    tree = ast.parse((BENCHMARK / "objective.py").read_text())
    declared = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                    if isinstance(node, ast.Assign)
                    and getattr(node.targets[0], "id", None) == "validation_metric")
    assert declared == {"name": "validation_psnr", "better": "higher"}
    assert declared["name"] in metrics


def test_tuning_spaces():
    """Every trained solver and the TV baseline declare at least 4 candidate
    combinations of their own parameters; the constrained solvers tune
    their dual step too."""
    solvers = {solver.name: solver for solver in Benchmark(BENCHMARK).get_solvers()}
    tuned = {name for name, solver in solvers.items() if "epochs" in solver.parameters}
    assert tuned == {"pnp_dictionary", "pnp_dncnn", "unrolled_pgd", "glow_prox"}
    for name in tuned | {"tv_pgd"}:
        space = solvers[name].tuning_space
        assert set(space) <= set(solvers[name].parameters), name
        assert math.prod(len(values) for values in space.values()) >= 4, name
        assert all(isinstance(v, (int, float, str, bool)) for vs in space.values() for v in vs)
    assert {"lr", "lr_dual"} <= set(solvers["unrolled_pgd"].tuning_space)
    assert {"lr", "lr_dual"} <= set(solvers["glow_prox"].tuning_space)
    assert "lmbd_pnp" in solvers["pnp_dictionary"].tuning_space
    assert "lmbd" in solvers["tv_pgd"].tuning_space


def trained_solver(benchmark, dataset, objective, name, **parameters):
    solver = next(s for s in benchmark.get_solvers() if s.name == name).get_instance(
        **parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    return solver


TINY = {"pnp_dictionary": dict(n_atoms=4, kernel_size=3, n_layers_train=2),
        "pnp_dncnn": dict(depth=2, width=4),
        "unrolled_pgd": dict(n_layers=2, width=4),
        "glow_prox": dict(n_layers=2, n_levels=1, depth=1, hidden_channels=4)}


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("lr_schedule", ["constant", "cosine", "step"])
def test_lr_schedule_follows_its_closed_form(name, lr_schedule):
    """After ``k`` of the ``T = epochs x steps per epoch`` steps the rate is
    ``lr (1 + cos(pi k / T)) / 2`` (cosine), ``lr / 10`` from ``T / 2`` and
    ``lr / 100`` from ``3 T / 4`` (step), ``lr`` (constant)."""
    benchmark, dataset, objective = quick_objective()
    solver = trained_solver(benchmark, dataset, objective, name, lr=0.01, batch_size=4,
                            epochs=2, lr_schedule=lr_schedule, **TINY[name])
    solver.build(0)
    total = 2 * solver.trainer.steps_per_epoch
    assert total == 8  # 16 images, batches of 4
    closed_form = {"constant": lambda k: 0.01,
                   "cosine": lambda k: 0.01 * (1 + math.cos(math.pi * k / total)) / 2,
                   "step": lambda k: 0.01 * (1 if k < 4 else 0.1 if k < 6 else 0.01)}
    for k in range(total + 1):
        if k:
            solver.trainer.train(1)
        assert solver.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
            closed_form[lr_schedule](k), rel=1e-12, abs=1e-15), k


def test_bad_lr_schedule_is_refused_before_any_work():
    benchmark, dataset, objective = quick_objective()
    solver = next(s for s in benchmark.get_solvers() if s.name == "unrolled_pgd").get_instance(
        lr_schedule="linear", batch_size=4)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        solver._set_objective(objective)
    assert not hasattr(solver, "model")


def smooth_images(n, size=16, seed=0):
    """Smooth stand-in images in [0.2, 0.8]: sums of low-frequency cosines."""
    rng = torch.Generator().manual_seed(seed)
    grid = torch.arange(size, dtype=torch.float64) / size
    images = []
    for _ in range(n):
        a, b, c = torch.rand(3, generator=rng, dtype=torch.float64)
        images.append(0.5 + 0.15 * torch.cos(2 * math.pi * (grid[:, None] * a + grid * b) + 6 * c)
                      + 0.15 * torch.cos(2 * math.pi * grid[:, None] * (1 - a)))
    return torch.stack(images)[:, None]


def test_unrolled_pgd_starts_as_pnp_with_a_smoothing_denoiser():
    """With the smoothing initialization, the untrained network is exactly L
    proximal-gradient steps with the binomial filter (replicate padding) as
    prox, already above A^T y on inpainting; the identity initialization is
    A^T y itself (the gradient step with 1 / ||A||^2 only resets observed
    pixels); a few training steps do not make it worse."""
    clean = smooth_images(8)
    physics = make_physics("inpainting", (1, 16, 16), 0.5, generator=generator(0))
    y = measure(physics, clean, 0.02, generator(1))
    network = UnrolledProximalGradient(4, 1, 1.0, width=4).to(torch.float64)
    with torch.no_grad():
        x = physics.A_adjoint(y)
        for _ in range(4):
            x = x - physics.A_adjoint(physics.A(x) - y)
            x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), "replicate"),
                                           BINOMIAL_3X3.to(x)[None, None])
        assert torch.allclose(network(y, physics), x, atol=1e-12)
        start = float(image_psnr(physics.A_adjoint(y), clean).mean())
        initial = float(image_psnr(network(y, physics), clean).mean())
        identity = UnrolledProximalGradient(4, 1, 1.0, width=4, prox_init="identity").to(
            torch.float64)
        assert torch.allclose(identity(y, physics), physics.A_adjoint(y), atol=1e-12)
    assert initial > start + 5, (initial, start)
    network = network.to(torch.float32)
    trainer = RestorationTrainer(network, physics.to(torch.float32), clean.float(), 0.02, 1.0,
                                 lr=1e-3, batch_size=4, generator=generator(2))
    trainer.train(10)
    with torch.no_grad():
        trained = float(image_psnr(network(y.float(), physics.to(torch.float32)).double(),
                             clean).mean())
    assert trained > initial - 0.1, (trained, initial)
    with pytest.raises(ValueError, match="width=1"):
        UnrolledProximalGradient(2, 1, 1.0, width=1)


def test_untrained_denoisers_do_not_start_below_the_input():
    """DnCNN's zero-initialized last convolution makes the untrained PnP
    return A^T y; zero-mean atoms make the untrained analysis dictionary PnP
    a restoration above it (Gaussian atoms, with a mean, fall below it)."""
    benchmark, dataset, objective = quick_objective(source="skimage", crop_size=16)
    solver = trained_solver(benchmark, dataset, objective, "pnp_dncnn", depth=3, width=4,
                            batch_size=4)
    solver.build(0)
    metrics = objective.evaluate_result(**solver.get_result())
    assert metrics["psnr"] == pytest.approx(metrics["psnr_input"], abs=1e-9)
    scores = {}
    for atom_init in ("zero_mean", "gaussian"):
        solver = trained_solver(benchmark, dataset, objective, "pnp_dictionary", n_atoms=8,
                                kernel_size=3, n_layers_train=2, batch_size=4,
                                atom_init=atom_init, warm_start=False)
        solver.build(0)
        weight = solver.model.weight.detach()
        if atom_init == "zero_mean":
            assert weight.mean(dim=(1, 2, 3)).abs().max() < 1e-6
        scores[atom_init] = objective.evaluate_result(**solver.get_result())["psnr"]
    assert scores["zero_mean"] > metrics["psnr_input"] + 1 > scores["gaussian"] + 1, scores


# -- Budgets (issue 17): every trained solver stops on its own ---------------
BENCHMARK = Path(__file__).parents[1] / "benchmark_inverse_problems"


def trained_solver_names():
    return [solver.name for solver in Benchmark(BENCHMARK).get_solvers()
            if "epochs" in solver.parameters]


@pytest.mark.parametrize("solver_name", trained_solver_names())
def test_default_budget_ends_the_run(solver_name):
    """With its default parameters (training budget ``epochs`` included) and
    benchopt's default ``--max-runs 100 --timeout 100``, a trained solver's
    run ends because its budget is spent (status ``done``) and its last
    evaluation scores the last epoch. A tiny dataset (16 training images of
    8 x 8, so one or two batches per epoch); the objective's defaults."""
    benchmark = Benchmark(BENCHMARK)
    dataset = next(d for d in benchmark.get_datasets() if d.name == "images").get_instance(
        source="digits", crop_size=8, n_train=16, n_test=2)
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective._set_dataset(dataset)
    solver = next(s for s in benchmark.get_solvers() if s.name == solver_name).get_instance()
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    steps = []  # the training steps of each round of the run
    build = solver.build

    def counting_build(seed):
        build(seed)
        train = solver.trainer.train
        solver.trainer.train = lambda n_steps: (steps.append(n_steps), train(n_steps))[1]

    solver.build = counting_build
    curve, status = run_with_default_limits(objective, solver, after_warm_up=steps.clear)
    assert status == "done", (solver_name, status, len(curve))
    assert sum(steps) == solver.epochs * solver.trainer.steps_per_epoch, (steps, solver.epochs)
    assert math.isfinite(curve[-1]["objective_psnr"]), curve[-1]


# -- Evidence measures (issue 15) on hand-built result tables ----------------
def claims_module():
    import sys
    sys.path.insert(0, str(Path(__file__).parents[1] / "ci"))
    import claims_inverse_problems
    return claims_inverse_problems


def result_rows(name, parameters, final, earlier=None):
    """Two evaluations (stop_val 0 and 20) of one solver: ``earlier`` then
    ``final`` metrics (``objective_`` prefixed)."""
    described = ",".join(f"{key}={value}" for key, value in parameters.items())
    rows = []
    for stop_val, metrics in ((0, earlier or {key: 0.0 for key in final}), (20, final)):
        rows.append({"solver_name": f"{name}[{described}]", "dataset_name": "images",
                     "objective_name": "Image restoration", "idx_rep": 0,
                     "stop_val": stop_val, "time": float(stop_val),
                     **{f"p_solver_{key}": value for key, value in parameters.items()},
                     **{f"objective_{key}": value for key, value in metrics.items()}})
    return rows


def pnp_table(warm_one_psnr, cold_one_psnr, one_seconds=0.01):
    import pandas as pd
    # A solver without the PnP parameters, as in a real run: their columns
    # hold NaN for it, so the layer counts become floats.
    rows = result_rows("tv_pgd", dict(lmbd=0.02), dict(psnr=30.0, seconds_per_image=0.1))
    for lmbd in (None, 0.005):
        for (n_train, n_pnp, warm), (psnr, seconds) in {
                (20, 20, True): (25.0, 0.1), (20, 1, True): (warm_one_psnr, one_seconds),
                (20, 1, False): (cold_one_psnr, one_seconds)}.items():
            rows += result_rows("pnp_dictionary", dict(
                n_layers_train=n_train, n_layers_pnp=n_pnp, warm_start=warm, lmbd_pnp=lmbd),
                dict(psnr=psnr, seconds_per_image=seconds))
    return pd.DataFrame(rows)


def test_pnp_warm_start_measure():
    measure = claims_module().pnp_warm_start
    holding = measure(pnp_table(warm_one_psnr=24.9, cold_one_psnr=28.0))
    assert holding.holds is True, holding.numbers
    assert "20/1 warm 24.90 dB at 0.10x" in holding.numbers
    assert "lmbd_pnp=0.005" in holding.numbers and "training lmbd" in holding.numbers
    # Warm-started 20/1 far from 20/20 (the collapse before the step cap).
    assert measure(pnp_table(warm_one_psnr=10.5, cold_one_psnr=28.0)).holds is False
    # Cold-started 20/1 as close as the warm one: no deviation.
    assert measure(pnp_table(warm_one_psnr=24.9, cold_one_psnr=25.05)).holds is False
    # 20/1 not cheaper than 20/20.
    assert measure(pnp_table(24.9, 28.0, one_seconds=0.05)).holds is False
    missing = measure(pnp_table(24.9, 28.0).query("p_solver_warm_start != False"))
    assert missing.holds is None and "missing" in missing.numbers


def glow_table(constrained_norms, constrained_psnr=28.0, constrained_noisy=26.0,
               rate=0.95):
    import pandas as pd
    rows = []
    for constrained, norms, psnr, noisy, descent in (
            (True, constrained_norms, constrained_psnr, constrained_noisy, rate),
            (False, [0.07, 1.4, 1.9, 0.6, 0.7, 0.1], 28.5, 25.0, 0.6)):
        metrics = dict(psnr=psnr, gradient_descent_rate=descent,
                       **{"psnr_iterate_noise_0.05": noisy + 1,
                          "psnr_iterate_noise_0.1": noisy},
                       **{f"gradient_norm_iter_{k}": value for k, value in enumerate(norms)})
        rows += result_rows("glow_prox", dict(constrained=constrained), metrics)
    return pd.DataFrame(rows)


def test_glow_prox_descent_measure():
    measure = claims_module().glow_prox_descent
    descending = [0.07, 1.8, 1.4, 0.8, 0.6, 0.09]
    holding = measure(glow_table(descending))
    assert holding.holds is True, holding.numbers
    assert "26.00 vs 25.00 dB" in holding.numbers
    assert "constrained 1.8, 1.4, 0.8, 0.6, 0.09" in holding.numbers
    # A layer that increases the mean gradient norm.
    assert measure(glow_table([0.07, 1.8, 1.9, 0.8, 0.6, 0.09])).holds is False
    # The descent rate (which counts the step from x_0) is reported, not judged.
    assert measure(glow_table(descending, rate=0.5)).holds is True
    # Final error not similar, or less robust.
    assert measure(glow_table(descending, constrained_psnr=25.0)).holds is False
    assert measure(glow_table(descending, constrained_noisy=24.0)).holds is False
    diverged = measure(glow_table(descending, constrained_psnr=math.nan))
    assert diverged.holds is False and "diverged" in diverged.numbers
    missing = measure(glow_table(descending).query("p_solver_constrained == False"))
    assert missing.holds is None and "missing" in missing.numbers
