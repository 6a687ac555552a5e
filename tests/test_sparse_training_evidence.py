"""The measures of the sparse-training claims (ci/claims_sparse_training.py)
on hand-built result tables: each holds on numbers that show its claim, fails
on numbers that do not, and cannot tell when the file lacks what it reads.
Its evidence configs pass benchopt's validation in tests/test_configs.py."""
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "ci"))
import claims_sparse_training as claims  # noqa: E402

EPOCHS = [0, 1, 2, 4, 10]


def runs(solver, metrics, dataset="digits", objective="Sparse training[model=mlp]",
         repetitions=1, **parameters):
    """Result rows of one solver setting: ``metrics`` maps a metric name to
    one value per epoch of EPOCHS (or a single value for all), repeated over
    ``repetitions``; ``parameters`` become ``p_solver_<name>`` columns, or
    ``p_obj_<name>`` columns (the objective's) when named ``obj_<name>``."""
    settings = ",".join(f"{name}={value}" for name, value in parameters.items()
                        if not name.startswith("obj_"))
    rows = []
    for repetition in range(repetitions):
        for index, epoch in enumerate(EPOCHS):
            row = dict(solver_name=f"{solver}[{settings}]", objective_name=objective,
                       dataset_name=dataset, idx_rep=repetition, stop_val=epoch,
                       time=0.1 * epoch)
            for name, values in metrics.items():
                value = values[index] if isinstance(values, list) else values
                row[f"objective_{name}"] = value
            for name, value in parameters.items():
                column = f"p_{name}" if name.startswith("obj_") else f"p_solver_{name}"
                row[column] = value
            rows.append(row)
    return pd.DataFrame(rows)


def table(*frames):
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------
# C7: LinBreg sparse and within 2 points of SGD.


def c7_table(linbreg_accuracy, linbreg_density, dataset="digits"):
    return table(
        runs("sgd", dict(test_acc=[0.1, 0.8, 0.9, 0.93, 0.95], density=1.0), dataset,
             repetitions=2, lr=0.1),
        runs("linbreg", dict(test_acc=[0.1, 0.5, 0.7, 0.9, linbreg_accuracy],
                             density=[0.01, 0.02, 0.03, 0.05, linbreg_density]), dataset,
             repetitions=2, lr=0.1, lmbd=0.1),
        # Another lmbd: dense and accurate, it must not be the one read.
        runs("linbreg", dict(test_acc=0.95, density=0.5), dataset, lr=0.1, lmbd=0.001))


def test_c7_holds_within_two_points_at_ten_percent():
    finding = claims.linbreg_sparse_and_accurate(c7_table(0.935, 0.08))
    assert finding.holds is True
    assert "digits" in finding.numbers and "93.5%" in finding.numbers
    assert "8.0% non-zero" in finding.numbers and "1.5 points" in finding.numbers


@pytest.mark.parametrize("accuracy, density", [(0.925, 0.08), (0.94, 0.12)])
def test_c7_fails_too_far_below_sgd_or_too_dense(accuracy, density):
    assert claims.linbreg_sparse_and_accurate(c7_table(accuracy, density)).holds is False


def test_c7_reads_mnist_when_the_file_has_it():
    # Holds on MNIST, fails on digits: the MNIST runs decide.
    results = table(c7_table(0.90, 0.08), c7_table(0.94, 0.05, dataset="mnist[n_train=10000]"))
    finding = claims.linbreg_sparse_and_accurate(results)
    assert finding.holds is True and finding.numbers.startswith("mnist")


def test_c7_cannot_tell_without_sgd():
    results = c7_table(0.94, 0.05)
    finding = claims.linbreg_sparse_and_accurate(results[~results.solver_name.str.match("sgd")])
    assert finding.holds is None and "no sgd run" in finding.numbers


# ---------------------------------------------------------------------------
# C8: density paths.


def c8_table(linbreg=(0.01, 0.012, 0.02, 0.04, 0.06), prox=(1.0, 0.999, 0.9, 0.7, 0.5),
             sgd=(1.0, 1.0, 1.0, 1.0, 1.0), linbreg_small=(0.01, 0.2, 0.3, 0.35, 0.4)):
    return table(
        runs("sgd", dict(density=list(sgd)), lr=0.1),
        runs("prox_sgd", dict(density=list(prox)), lr=0.1, lmbd=1e-4),
        runs("linbreg", dict(density=list(linbreg)), repetitions=3, lr=0.1, lmbd=0.1),
        runs("linbreg", dict(density=list(linbreg_small)), lr=0.1, lmbd=0.001))


def test_c8_holds_on_the_three_paths():
    finding = claims.density_paths(c8_table())
    assert finding.holds is True
    assert "LinBreg lmbd 0.1 [1.0%, 1.2%] after 0, 1 epochs -> 6.0%" in finding.numbers
    assert "proximal SGD lmbd 0.0001 [100.0%, 99.9%] -> 50.0%" in finding.numbers


@pytest.mark.parametrize("change", [
    # LinBreg makes most of its growth in the first epoch.
    dict(linbreg=(0.01, 0.05, 0.055, 0.058, 0.06)),
    # LinBreg does not start sparse.
    dict(linbreg=(0.05, 0.06, 0.08, 0.1, 0.12)),
    # LinBreg loses weights on the way.
    dict(linbreg=(0.01, 0.012, 0.04, 0.02, 0.06)),
    # The smaller lmbd is sparser than the larger one at some epoch.
    dict(linbreg_small=(0.01, 0.011, 0.3, 0.35, 0.4)),
    # Proximal SGD does not come down.
    dict(prox=(1.0, 1.0, 1.0, 0.999, 0.998)),
    # Proximal SGD does not start dense.
    dict(prox=(0.5, 0.5, 0.4, 0.3, 0.2)),
    # SGD loses weights.
    dict(sgd=(1.0, 1.0, 0.97, 0.95, 0.9)),
])
def test_c8_fails_when_a_path_differs(change):
    assert claims.density_paths(c8_table(**change)).holds is False


def test_c8_medians_over_repetitions():
    # One of three LinBreg repetitions jumps in its first epoch: the median
    # path still grows slowly.
    results = c8_table()
    jump = (results.solver_name.str.contains("lmbd=0.1")) & (results.idx_rep == 0) & (
        results.stop_val == 1)
    results.loc[jump, "objective_density"] = 0.059
    assert claims.density_paths(results).holds is True


# ---------------------------------------------------------------------------
# C9: architecture found by AdaBreg.


def widths(start, end):
    """neurons_per_layer_<l> columns: ``start`` at epoch 0, linear to ``end``."""
    return {f"neurons_per_layer_{layer}": [round(a + (b - a) * t) for t in (0, .25, .5, .75, 1)]
            for layer, (a, b) in enumerate(zip(start, end), start=1)}


def c9_table(final_widths, start=(13, 13, 13, 13, 13, 3)):
    objective = "Sparse training[model=mlp_deep,width=256,depth=5,task=denoising]"
    common = dict(objective=objective, obj_depth=5, obj_width=256)
    return table(
        runs("adabreg", dict(test_mse=0.03, **widths(start, final_widths)), lmbd=0.045,
             **common),
        runs("adam", dict(test_mse=0.022, **widths((256,) * 5 + (64,), (256,) * 5 + (64,))),
             lr=1e-3, **common))


def test_c9_holds_on_a_narrow_middle():
    finding = claims.architecture_found(c9_table((153, 158, 80, 62, 100, 62)))
    assert finding.holds is True
    assert "[13, 13, 13, 13, 13] -> [153, 158, 80, 62, 100]" in finding.numbers
    assert "test MSE 0.0300" in finding.numbers and "Adam test MSE 0.0220" in finding.numbers


@pytest.mark.parametrize("final", [
    (60, 158, 80, 70, 100, 62),   # narrowest first
    (153, 158, 80, 70, 50, 62),   # narrowest last
    (256, 256, 256, 256, 256, 64),  # full width: no narrowing
])
def test_c9_fails_without_a_narrow_middle(final):
    assert claims.architecture_found(c9_table(final)).holds is False


def test_c9_fails_when_the_layers_do_not_grow():
    start = (200, 200, 200, 200, 200, 64)
    assert claims.architecture_found(c9_table((150, 150, 40, 60, 100, 60), start)).holds is False


# ---------------------------------------------------------------------------
# C10, C11: CRATE against ViT.


def transformer_table(compression, sparsity, crate_accuracy=0.90, vit_accuracy=0.92,
                      crate_parameters=60_000, vit_parameters=210_000):
    """CRATE's per-layer metrics from initialization (first values) to the
    trained ones (``compression``, ``sparsity`` per layer)."""
    init_compression, init_sparsity = [100.0, 110.0, 112.0], [0.5, 0.65, 0.7]
    crate_metrics = dict(test_acc=[0.1, 0.5, 0.7, 0.8, crate_accuracy],
                         n_params=crate_parameters)
    for layer, (c0, c1, s0, s1) in enumerate(
            zip(init_compression, compression, init_sparsity, sparsity), start=1):
        crate_metrics[f"compression_layer_{layer}"] = [c0, c0, c1, c1, c1]
        crate_metrics[f"token_sparsity_layer_{layer}"] = [s0, s0, s1, s1, s1]
    vit_metrics = dict(test_acc=[0.1, 0.6, 0.8, 0.9, vit_accuracy], n_params=vit_parameters,
                       **{f"token_sparsity_layer_{layer}": 0.0 for layer in (1, 2, 3)})
    return table(
        runs("adamw", crate_metrics, objective="Sparse training[model=crate]", lr=1e-3,
             obj_model="crate"),
        runs("adamw", vit_metrics, objective="Sparse training[model=vit]", lr=1e-3,
             obj_model="vit"))


def test_c10_holds_when_compression_falls_and_sparsity_rises():
    results = transformer_table([90.0, 85.0, 80.0], [0.5, 0.6, 0.7])
    compression, sparsity = claims.crate_compresses(results), claims.crate_sparsifies(results)
    assert compression.holds is True and sparsity.holds is True
    assert ("[90.0, 85.0, 80.0] (median of 1 runs; falls at every layer in 1 of them), "
            "at initialization [100.0, 110.0, 112.0]") in compression.numbers
    assert "[0.500, 0.600, 0.700]" in sparsity.numbers


def test_c10_fails_at_a_layer_that_does_not_follow():
    results = transformer_table([90.0, 91.0, 80.0], [0.5, 0.65, 0.6])
    assert claims.crate_compresses(results).holds is False
    assert claims.crate_sparsifies(results).holds is False


def test_c10_reads_the_median_over_repetitions_and_counts_runs():
    # Two runs rise at every layer, one does not: the median rises.
    results = table(*(transformer_table([90.0, 85.0, 80.0], sparsity).assign(idx_rep=rep)
                      for rep, sparsity in enumerate(([0.5, 0.6, 0.7], [0.5, 0.62, 0.72],
                                                      [0.5, 0.65, 0.6]))))
    finding = claims.crate_sparsifies(results)
    assert finding.holds is True
    assert "[0.500, 0.620, 0.700] (median of 3 runs; rises at every layer in 2 of them)" \
        in finding.numbers


def test_c10_reads_the_trained_network_not_the_initialization():
    # Sparsity rises at initialization (0.5, 0.65, 0.7) but not after training.
    results = transformer_table([90.0, 85.0, 80.0], [0.6, 0.6, 0.6])
    assert claims.crate_sparsifies(results).holds is False


def test_c11_holds_with_fewer_parameters_at_close_accuracy():
    finding = claims.crate_matches_vit(transformer_table([1, 0, 0], [0, 1, 1]))
    assert finding.holds is True
    assert "CRATE 90.0% test accuracy with 60,000 parameters" in finding.numbers
    assert ("ViT 92.0% with 210,000 (0.29x the parameters; ViT - CRATE: +2.0 points)"
            in finding.numbers)


@pytest.mark.parametrize("change", [dict(crate_accuracy=0.88), dict(crate_parameters=110_000)])
def test_c11_fails_far_below_vit_or_with_many_parameters(change):
    assert claims.crate_matches_vit(transformer_table([1, 0, 0], [0, 1, 1], **change)).holds \
        is False


def test_transformer_claims_cannot_tell_without_crate():
    results = transformer_table([1, 0, 0], [0, 1, 1])
    vit_only = results[results.p_obj_model == "vit"]
    for measure in (claims.crate_compresses, claims.crate_sparsifies, claims.crate_matches_vit):
        finding = measure(vit_only)
        assert finding.holds is None and "model=crate" in finding.numbers


def test_every_claim_names_an_evidence_config_that_exists():
    assert [claim.key for claim in claims.CLAIMS] == ["C7", "C8", "C9", "C10a", "C10b", "C11"]
    for claim in claims.CLAIMS:
        assert claim.config_path.name.startswith("evidence_") and claim.config_path.exists()
