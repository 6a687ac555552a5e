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
from solvers_common.inverse_problems.networks import SoftClampedScale


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
