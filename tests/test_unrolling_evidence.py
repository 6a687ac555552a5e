"""The measures of benchmark_unrolling's claims (ci/claims_unrolling.py) on
hand-built result files: each claim holds on one, fails on another, and
cannot be told when a solver is missing."""
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from benchopt.benchmark import Benchmark

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "ci"))

import claims_unrolling as claims  # noqa: E402

L = 4
LISTA = ("lista", {"init": "random", "noise_level": 0.0})
LISTA_NOISE = ("lista", {"init": "random", "noise_level": 0.1})
CONSTRAINED = ("lista_constrained", {"init": "random", "noise_level": 0.1})
CONSTRAINED_NO_NOISE = ("lista_constrained", {"init": "random", "noise_level": 0.0})


def row(solver, stop_val=10, idx_rep=0, **metrics):
    """One line of a benchopt result file for ``solver = (name, parameters)``."""
    name, parameters = solver
    line = {"solver_name": name + (f"[{','.join(f'{k}={v}' for k, v in parameters.items())}]"
                                   if parameters else ""),
            "dataset_name": "simulated", "objective_name": "Unrolled sparse coding",
            "idx_rep": idx_rep, "stop_val": stop_val, "time": 1.0, "p_obj_n_layers": L}
    line.update({f"p_solver_{key}": value for key, value in parameters.items()})
    line.update({f"objective_{key}": value for key, value in metrics.items()})
    return line


def layers(metric, values):
    assert len(values) == L + 1
    return {f"{metric}_layer_{layer}": value for layer, value in enumerate(values)}


def frame(*rows):
    return pd.DataFrame(list(rows))


# ---------------------------------------------------------------------------
# C1: learned networks against ISTA
# ---------------------------------------------------------------------------

ISTA_GAPS = {"gap_extra_layers_0": 0.5, "gap_extra_layers_4": 0.2,
             "gap_extra_layers_8": 0.1, "gap_extra_layers_16": 0.01}


def ista_comparison_frame(lista_gap, variant_gaps=(0.005, 0.005, 0.005)):
    rows = [row(("ista", {}), stop_val=1, value=0.5, **ISTA_GAPS),
            # an early evaluation, worse than ISTA: only the last one counts
            row(("lista", {"init": "ista"}), stop_val=1, value=0.9),
            row(("lista", {"init": "ista"}), value=lista_gap)]
    rows += [row((name, {}), value=gap)
             for name, gap in zip(["lista_cp", "alista", "slista"], variant_gaps)]
    return frame(*rows)


def test_lista_vs_ista_counts_ista_iterations():
    # ISTA reaches 0.05 first at L + 16 = 20 iterations >= 3 L = 12: holds.
    finding = claims.measure_lista_vs_ista(ista_comparison_frame(0.05))
    assert finding.holds is True
    assert "LISTA 0.05: ISTA needs 20 iterations" in finding.numbers
    # 0.15 is reached at L + 8 = 12 (= 3 L, holds), 0.3 at L + 4 = 8 (fails).
    assert claims.measure_lista_vs_ista(ista_comparison_frame(0.15)).holds is True
    finding = claims.measure_lista_vs_ista(ista_comparison_frame(0.3))
    assert finding.holds is False and "ISTA needs 8 iterations" in finding.numbers
    # Below every ISTA gap of the config: more than L + 16.
    finding = claims.measure_lista_vs_ista(ista_comparison_frame(0.001))
    assert finding.holds is True and "more than 20" in finding.numbers


def test_variants_vs_ista_need_every_variant():
    assert claims.measure_variants_vs_ista(ista_comparison_frame(0.05)).holds is True
    finding = claims.measure_variants_vs_ista(
        ista_comparison_frame(0.05, variant_gaps=(0.005, 0.4, 0.005)))
    assert finding.holds is False
    assert "ALISTA 0.4: ISTA needs 8 iterations" in finding.numbers


def test_a_better_earlier_evaluation_is_reported_not_judged():
    df = ista_comparison_frame(0.05)
    # SLISTA reached 0.05 at epoch 6 and ends at 0.3 (training went astray).
    df = pd.concat([df, frame(row(("slista", {}), stop_val=6, value=0.05))])
    df.loc[df["solver_name"].eq("slista") & df["stop_val"].eq(10), "objective_value"] = 0.3
    finding = claims.measure_variants_vs_ista(df)
    assert finding.holds is False
    assert ("SLISTA 0.3: ISTA needs 8 iterations [best evaluation 0.05 at epoch 6: 20]"
            in finding.numbers)
    # A network worse than ISTA at L: "no more than L".
    df.loc[df["solver_name"].eq("slista") & df["stop_val"].eq(10), "objective_value"] = 0.7
    assert "SLISTA 0.7: ISTA needs 4 (no more than L)" in claims.measure_variants_vs_ista(
        df).numbers


def test_a_missing_solver_cannot_tell():
    df = ista_comparison_frame(0.05)
    finding = claims.measure_lista_vs_ista(df[df["solver_name"] != "ista"])
    assert finding.holds is None and "ista" in finding.numbers


# ---------------------------------------------------------------------------
# C2, C3: descent per layer
# ---------------------------------------------------------------------------

DESCENDING = [1.0, 0.6, 0.4, 0.3, 0.2]
ONE_INCREASE = [1.0, 0.6, 0.7, 0.3, 0.2]      # 1 of 4 layers up: 25%
NON_DESCENDING = [1.0, 1.2, 1.5, 0.9, 0.2]    # 2 of 4 layers up: 50%


def descent_frame(lista_nmse, constrained_nmse, lista_value=0.2, constrained_value=0.2):
    return frame(
        row(LISTA, value=lista_value, descent_violation_rate=0.5,
            **layers("nmse", lista_nmse), **layers("gap", NON_DESCENDING)),
        row(CONSTRAINED, value=constrained_value, descent_violation_rate=0.1,
            **layers("nmse", constrained_nmse), **layers("gap", ONE_INCREASE)),
        row(CONSTRAINED_NO_NOISE, value=0.3, descent_violation_rate=0.1,
            **layers("nmse", DESCENDING), **layers("gap", DESCENDING)),
    )


def test_lista_does_not_descend():
    finding = claims.measure_lista_does_not_descend(descent_frame(NON_DESCENDING, DESCENDING))
    assert finding.holds is True
    assert "increases at 50% of its 4 layers, F at 50%" in finding.numbers
    assert claims.measure_lista_does_not_descend(
        descent_frame(ONE_INCREASE, DESCENDING)).holds is True   # 25% >= 20%
    assert claims.measure_lista_does_not_descend(
        descent_frame(DESCENDING, DESCENDING)).holds is False


def test_constrained_descends_at_a_close_gap():
    finding = claims.measure_constrained_descends(descent_frame(NON_DESCENDING, DESCENDING))
    assert finding.holds is True
    assert "increases at 0% of the layers, F at 25%" in finding.numbers
    assert "1.00x LISTA's 0.2" in finding.numbers
    assert "constraints without training noise" in finding.numbers   # the control
    # One layer going away from z*: fails.
    assert claims.measure_constrained_descends(
        descent_frame(NON_DESCENDING, ONE_INCREASE)).holds is False
    # Every layer descends, but at 1.5x LISTA's gap: fails; 1.2x holds.
    assert claims.measure_constrained_descends(descent_frame(
        NON_DESCENDING, DESCENDING, constrained_value=0.3)).holds is False
    assert claims.measure_constrained_descends(descent_frame(
        NON_DESCENDING, DESCENDING, constrained_value=0.24)).holds is True


def test_the_constrained_network_is_the_one_trained_with_noise():
    # Without the noise-trained constrained LISTA the claim cannot be told,
    # even though the control (no noise) is there.
    df = descent_frame(NON_DESCENDING, DESCENDING)
    df = df[df["p_solver_noise_level"].astype(float).eq(0) | ~df["solver_name"].str.startswith(
        "lista_constrained")]
    assert claims.measure_constrained_descends(df).holds is None


# ---------------------------------------------------------------------------
# C4: robustness; C15: past the trained depth
# ---------------------------------------------------------------------------

def noise_frame(constrained_noisy, lista_noisy, constrained_value=0.1, lista_value=0.2):
    def noisy(values):
        return {f"gap_iterate_noise_{sigma}": value
                for sigma, value in zip(["0.1", "1.0", "10.0"], values)}
    return frame(row(CONSTRAINED, value=constrained_value, **noisy(constrained_noisy)),
                 row(LISTA, value=lista_value, **noisy(lista_noisy)),
                 row(LISTA_NOISE, value=0.3, **noisy([0.3, 0.4, 0.5])))


def test_constrained_is_robust_compares_increases_at_every_level():
    finding = claims.measure_constrained_is_robust(
        noise_frame([0.11, 0.5, 5.0], [0.25, 2.0, 50.0]))
    assert finding.holds is True
    assert "sigma 1: 0.5 vs 2 (LISTA with training noise 0.4)" in finding.numbers
    # Larger at one level: fails.
    assert claims.measure_constrained_is_robust(
        noise_frame([0.11, 0.5, 60.0], [0.25, 2.0, 50.0])).holds is False
    # The increase counts, not the gap: constrained 0.1 -> 0.35 (+0.25)
    # against LISTA 0.2 -> 0.4 (+0.2) at sigma 0.1 fails though 0.35 < 0.4.
    assert claims.measure_constrained_is_robust(
        noise_frame([0.35, 0.5, 5.0], [0.4, 2.0, 50.0])).holds is False


def test_constrained_past_depth():
    def past(gaps):
        return {f"gap_extra_layers_{k}": gap for k, gap in zip([0, 10, 40], gaps)}
    keeps_improving = frame(row(CONSTRAINED, value=0.1, **past([0.1, 0.05, 0.04])),
                            row(LISTA, value=0.2, **past([0.2, 0.5, 9.0])))
    finding = claims.measure_constrained_past_depth(keeps_improving)
    assert finding.holds is True
    assert "constrained LISTA 0.1 -> 0.05 -> 0.04; LISTA 0.2 -> 0.5 -> 9" in finding.numbers
    degrades = frame(row(CONSTRAINED, value=0.1, **past([0.1, 0.05, 0.2])),
                     row(LISTA, value=0.2, **past([0.2, 0.5, 9.0])))
    assert claims.measure_constrained_past_depth(degrades).holds is False
    # 5% worse past L, as measured: does not keep improving.
    slightly = frame(row(CONSTRAINED, value=0.1, **past([0.1, 0.105, 0.105])),
                     row(LISTA, value=0.2, **past([0.2, 0.5, 9.0])))
    assert claims.measure_constrained_past_depth(slightly).holds is False


def test_repetitions_are_averaged_at_their_last_evaluation():
    df = frame(row(LISTA, stop_val=5, idx_rep=0, value=9.0),
               row(LISTA, stop_val=10, idx_rep=0, value=0.1),
               row(LISTA, stop_val=10, idx_rep=1, value=0.3))
    assert claims.final_scores(df, *LISTA)["objective_value"] == pytest.approx(0.2)
    with pytest.raises(claims.Missing):
        claims.final_scores(df, *CONSTRAINED)


# ---------------------------------------------------------------------------
# The configs the claims read
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda claim: claim.key)
def test_each_claim_names_a_valid_evidence_config(claim):
    assert claim.config_path.exists()
    assert claim.config_path.name.startswith("evidence_")
    config = yaml.safe_load(claim.config_path.read_text())
    benchmark = Benchmark(claim.benchmark)
    solvers = benchmark.check_solver_patterns(config["solver"])
    assert {klass.name for klass, _ in solvers} >= {"ista", "lista"}
    benchmark.check_objective_filters(config["objective"])
    benchmark.check_dataset_patterns(config["dataset"])
