"""Mutation check: do the tests catch a wrong algorithm?

A curated list of small mutations of the core algorithms (a sign, a step, a
threshold, an index: each breaks one equation of the paper the code
transcribes). Each is applied to a temporary copy of the repository, never to
the checkout itself, and only the tests that guard that code run in the copy.
A mutation is *caught* when those tests fail, *MISSED* when they all pass.

Usage:
    python ci/mutations.py                  every mutation, one line each, then "caught k / n"
    python ci/mutations.py --only ID ...    the named mutations
    python ci/mutations.py --list           the mutations, their tests, no run
    python ci/mutations.py --check          only check that every target is in the code
    options: --jobs N (parallel copies, default 1), --first-failure (pytest -x),
             --no-baseline, --timeout S (per mutation), --keep-copy

Exit status: 0 when every mutation run is caught; 1 when one is missed, its
target text is not found exactly once in the current code (the list must
follow the code: edit it with the code), its tests select nothing, or its
tests already fail without the mutation (the baseline: each test file runs
once unmutated first, on the union of the selections that name it).

The copy: the tracked files (``git ls-files``) and the untracked files git
does not ignore (``git ls-files --others --exclude-standard``), so neither
``.venv`` nor ``outputs``; one copy per job, reused from mutation to mutation,
the mutated files restored byte for byte after each. The virtual environment
installs the project in editable mode (a meta-path finder that maps
``solvers_common`` to the checkout, consulted after ``sys.path``), so pytest
runs with the copy as working directory and first on ``PYTHONPATH``; the
harness checks that ``solvers_common`` imports from the copy before it runs
anything (and ``tests/test_mutations.py`` that a mutation is caught there
while the checkout is untouched). Each write in the copy gets a fresh
modification time, a whole second later than the previous one, so that no
stale ``.pyc`` or numba cache of another version of a file is reused; the
benchopt caches (``__cache__``) of the copy are removed before each run.

Not part of the test command (about 15 minutes on one core).
"""
import argparse
import concurrent.futures
import dataclasses
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Edit:
    """Replace ``old`` (found exactly once in ``path``) by ``new``."""
    path: str
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One mutation: its edits (usually one line; several when the same
    algorithm has two implementations, which must both be wrong for the
    mutation to be an algorithm error rather than a disagreement), the
    pytest arguments that guard it (files, or node ids) and an optional
    ``-k`` expression, and what it breaks."""
    id: str
    edits: tuple
    tests: tuple
    description: str
    keyword: Optional[str] = None

    @property
    def files(self):
        return tuple(dict.fromkeys(edit.path for edit in self.edits))


def mutation(id, edits, tests, description, keyword=None):
    """A :class:`Mutation` from ``(path, old, new)`` triples (or one triple)
    and a test file or list of them."""
    if isinstance(edits[0], str):
        edits = [edits]
    tests = (tests,) if isinstance(tests, str) else tuple(tests)
    return Mutation(id, tuple(Edit(*edit) for edit in edits), tests, description, keyword)


# -- the catalogue -------------------------------------------------------------------------------
PROX = "solvers_common/prox.py"
LASSO = "solvers_common/lasso.py"
NETWORKS = "solvers_common/unrolled/networks.py"
UNROLLED_TRAINING = "solvers_common/unrolled/training.py"
VARIANCE_REDUCTION = "solvers_common/bilevel/variance_reduction.py"
FUSED = "solvers_common/bilevel/fused.py"
SCHEDULES = "solvers_common/bilevel/schedules.py"
ROUTINES = "solvers_common/bilevel/stochastic_routines.py"
LINEAR_SOLVERS = "solvers_common/bilevel/linear_solvers.py"
SPARSE = "solvers_common/bilevel/sparse.py"
SPARSE_CD = "solvers_common/bilevel/sparse_cd.py"
SPARSE_HYPERGRADIENTS = "solvers_common/bilevel/sparse_hypergradients.py"
FAMILIES = "benchmark_bilevel/benchmark_utils/solver_families.py"
BREGMAN = "solvers_common/optim/bregman.py"
CODING_RATE = "solvers_common/metrics/coding_rate.py"
TRANSFORMERS = "solvers_common/models/transformers.py"
DICTIONARY = "solvers_common/inverse_problems/dictionary.py"
RESTORERS = "solvers_common/inverse_problems/restorers.py"
RESTORATION_TRAINING = "solvers_common/inverse_problems/training.py"


def solver(benchmark, name):
    return f"benchmark_{benchmark}/solvers/{name}.py"


T_PROX = "tests/test_prox.py"
T_LASSO = "tests/test_lasso.py"
T_UNROLLED = "tests/test_unrolled.py"
T_ALISTA = "tests/test_alista_slista.py"
T_ALGORITHMS = "tests/test_bilevel_algorithms.py"
T_BILEVEL_SOLVERS = "tests/test_bilevel_solvers.py"
T_BILEVEL_LASSO = "tests/test_bilevel_lasso.py"
T_OPTIM = "tests/test_sparse_training_optim.py"
T_TRANSFORMERS = "tests/test_transformers.py"
T_INVERSE = "tests/test_inverse_problems.py"

MUTATIONS = [
    # -- proximal operators --------------------------------------------------------------------
    mutation(
        "prox-soft-threshold-sign",
        (PROX, "return torch.sign(z).detach() * torch.relu(z.abs() - threshold)",
         "return torch.relu(z.abs() - threshold)"),
        T_PROX,
        "soft-thresholding drops sign(z): prox of t||.||_1 is sign(z) max(|z| - t, 0) "
        "(Beck 2017, Example 6.8)"),
    mutation(
        "prox-nonnegative-threshold",
        (PROX, "return torch.relu(z - threshold)", "return torch.relu(z)"),
        T_PROX,
        "nonnegative soft-thresholding without its shift: prox of t||.||_1 + i(z >= 0) is "
        "max(z - t, 0)"),
    mutation(
        "prox-group-threshold",
        (PROX, "return z * torch.relu(1 - threshold / norms.clamp_min(eps))",
         "return z * torch.relu(1 - threshold / norms.clamp_min(eps) ** 2)"),
        [T_PROX, T_OPTIM],
        "block soft-thresholding divides by ||z_g||^2: prox of t sum_g ||z_g|| is "
        "z_g max(1 - t / ||z_g||, 0) (group lasso, Yuan & Lin 2006)"),
    # -- the Lasso: ISTA step, duality gap -------------------------------------------------------
    mutation(
        "lasso-ista-threshold",
        (LASSO, "return soft_threshold(Z - step_size * lasso_gradient(Z, X, D), "
                "step_size * lmbd)",
         "return soft_threshold(Z - step_size * lasso_gradient(Z, X, D), lmbd)"),
        T_LASSO,
        "ISTA step thresholds at lmbd instead of step * lmbd: z+ = ST(z - t grad f(z), t lmbd) "
        "(Beck & Teboulle 2009, ISTA step (1.4)); solve_lasso's reference is wrong"),
    mutation(
        "lasso-duality-gap-dual-point",
        (LASSO, "/ lmbd, min=1.0)", "/ lmbd, max=1.0)"),
        T_LASSO,
        "the dual point is not rescaled into {||D^T theta||_inf <= lmbd}: the duality gap "
        "loses its certificate (lasso.duality_gap)"),
    # -- unrolled ISTA / FISTA / LISTA ------------------------------------------------------------
    mutation(
        "unrolled-ista-step",
        (NETWORKS, 'self.register_buffer("W_z", eye - step * D.T @ D)',
         'self.register_buffer("W_z", eye - D.T @ D)'),
        T_UNROLLED,
        "unrolled ISTA layer with step 1 instead of 1 / L_D: W_z = I - D^T D / L_D "
        "(Daubechies, Defrise & De Mol 2004)"),
    mutation(
        "unrolled-fista-momentum",
        (NETWORKS, "return (self._t[index - 1] - 1) / self._t[index] if index > 0 else 0.0",
         "return (self._t[index] - 1) / self._t[index] if index > 0 else 0.0"),
        T_UNROLLED,
        "FISTA momentum (t_l - 1) / t_l instead of (t_{l-1} - 1) / t_l "
        "(Beck & Teboulle 2009, eq. (4.3))"),
    mutation(
        "unrolled-fista-t-recursion",
        (NETWORKS, "self._t.append((1 + (1 + 4 * self._t[-1] ** 2) ** 0.5) / 2)",
         "self._t.append((1 + (1 + 4 * self._t[-1]) ** 0.5) / 2)"),
        T_UNROLLED,
        "FISTA t_{k+1} = (1 + sqrt(1 + 4 t_k)) / 2 instead of (1 + sqrt(1 + 4 t_k^2)) / 2 "
        "(Beck & Teboulle 2009, eq. (4.2))"),
    mutation(
        "lista-untied-layer-weights",
        (NETWORKS, "return torch.addmm(terms[index], z, W_z[index].T)",
         "return torch.addmm(terms[index], z, W_z[0].T)"),
        T_UNROLLED,
        "untied LISTA layer l uses the first layer's W_z: z_{l+1} = ST(W_z^l z_l + W_x^l x, "
        "theta^l) (Gregor & LeCun 2010)"),
    mutation(
        "lista-cp-residual-sign",
        (NETWORKS, "return torch.addmm(z, torch.addmm(minus_x, z, self.D.T), W[index], "
                   "alpha=-1)",
         "return torch.addmm(z, torch.addmm(minus_x, z, self.D.T), W[index], alpha=1)"),
        [T_UNROLLED, T_ALISTA],
        "LISTA-CP / ALISTA / SLISTA layer ascends: z_{l+1} = ST(z_l - W_l^T (D z_l - x), "
        "theta_l) (Chen, Liu, Wang & Yin 2018, eq. (13))"),
    mutation(
        "alista-analytic-weights",
        (NETWORKS, "W = G_inverse_D / (D64 * G_inverse_D).sum(0, keepdim=True)",
         "W = G_inverse_D"),
        [T_UNROLLED, T_ALISTA],
        "ALISTA's analytic W without its normalization w_i^T d_i = 1 "
        "(Liu, Chen, Wang & Yin 2019, eq. (17))"),
    mutation(
        "alista-support-selection",
        (NETWORKS, "kept &= magnitude > threshold", "kept &= magnitude >= 0"),
        T_ALISTA,
        "support selection passes entries below the threshold unshrunk "
        "(Chen, Liu, Wang & Yin 2018, eq. (13); Liu et al. 2019, eq. (16))"),
    mutation(
        "slista-threshold",
        (NETWORKS, "return (self.step * self.lmbd).unbind(0)", "return self.step.unbind(0)"),
        [T_UNROLLED, T_ALISTA],
        "SLISTA threshold a^l instead of a^l lmbd (Ablin, Moreau, Massias & Gramfort 2019, "
        "Sec. 3)"),
    # -- constrained LISTA (Hadou, NaderiAlizadeh & Ribeiro 2024) ----------------------------------
    mutation(
        "lista-dual-ascent-sign",
        (UNROLLED_TRAINING,
         "self.multipliers = torch.relu(self.multipliers + self.lr_dual * constraints.detach())",
         "self.multipliers = torch.relu(self.multipliers - self.lr_dual * constraints.detach())"),
        T_UNROLLED,
        "dual descent instead of ascent: nu <- max(0, nu + lr_dual c) "
        "(Hadou et al. 2024, Algorithm 1)"),
    mutation(
        "lista-dual-projection",
        (UNROLLED_TRAINING,
         "self.multipliers = torch.relu(self.multipliers + self.lr_dual * constraints.detach())",
         "self.multipliers = (self.multipliers + self.lr_dual * constraints.detach())"),
        T_UNROLLED,
        "multipliers not projected on nu >= 0 (Hadou et al. 2024, Algorithm 1, projected "
        "dual ascent)"),
    mutation(
        "lista-constraint-ratio-inverted",
        (UNROLLED_TRAINING,
         "ratios = torch.where(defined, norms[1:] / norms[:-1].clamp_min(floor), 0)",
         "ratios = torch.where(defined, norms[:-1] / norms[1:].clamp_min(floor), 0)"),
        T_UNROLLED,
        "descending constraint inverted: r_l = ||z_l - z*|| / ||z_{l-1} - z*|| "
        "(Hadou et al. 2024, problem (6))"),
    mutation(
        "lista-constraint-epsilon",
        (UNROLLED_TRAINING, "return ratio_sums / counts.clamp_min(1) - (1 - self.epsilon)",
         "return ratio_sums / counts.clamp_min(1) - (1 + self.epsilon)"),
        T_UNROLLED,
        "constraint c_l = mean r_l - (1 + eps) instead of - (1 - eps) "
        "(Hadou et al. 2024, problem (6))"),
    mutation(
        "lista-noise-injection-off",
        (UNROLLED_TRAINING, "return z + scale * noise.to(z.device)", "return z"),
        T_UNROLLED,
        "no noise injected into the iterates z_1 .. z_{L-1} during training "
        "(Hadou et al. 2024, Sec. 4, noisy unrolling)"),
    mutation(
        "lista-noise-log-scaling",
        (UNROLLED_TRAINING, "scale = scale * torch.log(gradient_norm.clamp_min(1e-12))",
         "scale = scale * gradient_norm"),
        T_UNROLLED,
        "noise scaled by ||grad f(z_l)|| instead of log ||grad f(z_l)|| (the code of "
        "Hadou et al. 2024, noise_scaling='log_gradient_norm')"),
    # -- SOBA, SABA, SRBA (Dagreou et al. 2022, 2024): both implementations ------------------------
    mutation(
        "soba-outer-step-is-inner-step",
        [(solver("bilevel", "soba"), "self.lmbd = lmbd - gamma * (cross_v + grad_lmbd_outer)",
          "self.lmbd = lmbd - rho * (cross_v + grad_lmbd_outer)"),
         (FUSED, "lmbd - gamma * d_lmbd, t + 1", "lmbd - rho * d_lmbd, t + 1")],
        T_ALGORITHMS,
        "SOBA's outer step gamma_t = rho_t (outer_ratio ignored), both paths "
        "(Dagreou et al. 2022, Algorithm 1)",
        keyword="soba"),
    mutation(
        "soba-v-direction-sign",
        [(solver("bilevel", "soba"), "self.v = v - rho * (hessian_v + grad_theta_outer)",
          "self.v = v - rho * (hessian_v - grad_theta_outer)"),
         (FUSED, "return gradient, hessian_v + grad_theta_outer, cross_v + grad_lmbd_outer",
          "return gradient, hessian_v - grad_theta_outer, cross_v + grad_lmbd_outer")],
        T_ALGORITHMS,
        "D_v = d2 G v - grad_theta F instead of + grad_theta F, both paths "
        "(Dagreou et al. 2022, Eq. (6))",
        keyword="soba"),
    mutation(
        "soba-step-schedule",
        [(SCHEDULES, "return self.step_size / (t + 1) ** self.exponent",
          "return self.step_size / (t + 2) ** self.exponent"),
         (FUSED, "return step * (iteration + 1).to(step.dtype) ** -exponent",
          "return step * (iteration + 2).to(step.dtype) ** -exponent")],
        T_ALGORITHMS,
        "decreasing steps rho_t = rho / (t + 2)^a instead of rho / (t + 1)^a, both paths "
        "(Dagreou et al. 2022, Theorem 1's schedule)",
        keyword="soba"),
    mutation(
        "saba-outer-step-is-inner-step",
        [(solver("bilevel", "saba"),
          "rho, gamma = self.step_size, self.step_size / self.outer_ratio",
          "rho, gamma = self.step_size, self.step_size"),
         (FUSED, "lmbd - gamma * (cross_v + grad_lmbd_outer))",
          "lmbd - rho * (cross_v + grad_lmbd_outer))")],
        T_ALGORITHMS,
        "SABA's outer step gamma = rho (outer_ratio ignored), both paths "
        "(Dagreou et al. 2022, Algorithm 2)",
        keyword="saba"),
    mutation(
        "saga-biased-average",
        [(VARIANCE_REDUCTION,
          "direction = difference + self.average\n"
          "        self.average += self.weights[batch_id] * difference\n",
          "self.average += self.weights[batch_id] * difference\n"
          "        direction = difference + self.average\n"),
         (FUSED, "return (difference + average,",
          "return (difference + average + share * difference,")],
        T_ALGORITHMS,
        "SAGA direction with the average updated first (biased), SagaMemory and "
        "fused.saga_step (Defazio et al. 2014; SABA, Dagreou et al. 2022, Algorithm 2)",
        keyword="saba"),
    mutation(
        "saga-table-not-written",
        [(VARIANCE_REDUCTION, "self.table[batch_id] = value",
          "self.table[batch_id] = self.table[batch_id]"),
         (FUSED, "(table.index_copy(0, block, value[None]), average + share",
          "(table, average + share")],
        T_ALGORITHMS,
        "SAGA memory never stores the new value, both paths (Dagreou et al. 2022, "
        "Algorithm 2: the memory of block i is replaced)",
        keyword="saba"),
    mutation(
        "saga-uniform-weights",
        [(VARIANCE_REDUCTION, "self.average += self.weights[batch_id] * difference",
          "self.average += difference / len(self.weights)"),
         (FUSED, "average + share * difference))", "average + difference / table.shape[0]))")],
        T_ALGORITHMS,
        "SAGA average with uniform block weights on blocks of unequal sizes, both paths "
        "(Dagreou et al. 2022, Algorithm 2: the average over samples)",
        keyword="saba"),
    mutation(
        "srba-no-periodic-full-pass",
        [(solver("bilevel", "srba"), "if self.iteration % self.period == 0:",
          "if self.iteration == 0:"),
         (solver("bilevel", "srba"), "drawn = (t % self.period != 0)", "drawn = (t != 0)"),
         (FUSED, 'torch.cond(t % hyper["period"] == 0,', "torch.cond(t == 0,")],
        T_ALGORITHMS,
        "SRBA's full-batch directions only at t = 0, not every q iterations, both paths "
        "(Dagreou et al. 2024, Algorithm 1)",
        keyword="srba"),
    mutation(
        "sarah-recursive-difference",
        [(VARIANCE_REDUCTION,
          "self.direction = value + (1 - momentum) * (self.direction - previous_value)",
          "self.direction = previous_value + (1 - momentum) * (self.direction - value)"),
         (FUSED, "return tuple(value + (direction - previous_value) for",
          "return tuple(previous_value + (direction - value) for")],
        T_ALGORITHMS,
        "recursive estimator d_k = g(z_{k-1}) + d_{k-1} - g(z_k), both paths "
        "(SARAH, Nguyen et al. 2017, Eq. (2); STORM, Cutkosky & Orabona 2019, Eq. (1))",
        keyword="srba or vrbo or mrbo or sustain or fsla or recursive"),
    # -- the other stochastic bilevel solvers --------------------------------------------------
    mutation(
        "amigo-linear-system-sign",
        (ROUTINES,
         "v = v - step_size * (problem.inner_hessian_vector(theta, lmbd, v, batch) - b)",
         "v = v - step_size * (problem.inner_hessian_vector(theta, lmbd, v, batch) + b)"),
        T_ALGORITHMS,
        "AmIGO's SGD on 1/2 v^T A v - b^T v with gradient A v + b "
        "(Arbel & Mairal 2022, Algorithm 3)",
        keyword="amigo"),
    mutation(
        "amigo-outer-cross-sign",
        (solver("bilevel", "amigo"),
         "self.lmbd = lmbd - self.step_size / self.outer_ratio * (grad_lmbd_outer - cross_v)",
         "self.lmbd = lmbd - self.step_size / self.outer_ratio * (grad_lmbd_outer + cross_v)"),
        T_ALGORITHMS,
        "AmIGO's hypergradient grad_x f + d2_xy g v instead of - (Arbel & Mairal 2022, "
        "Algorithm 1)",
        keyword="amigo"),
    mutation(
        "inner-loop-cold-start",
        (FAMILIES, "self.theta = inner_sgd(problem, self.theta, lmbd, sampler, self.step_size,",
         "self.theta = inner_sgd(problem, 0 * self.theta, lmbd, sampler, self.step_size,"),
        T_ALGORITHMS,
        "stocBiO / BSA inner SGD restarted from 0 instead of warm-started from theta_{k-1} "
        "(Ji, Yang & Liang 2021, Algorithm 2; Ghadimi & Wang 2018, Algorithm 2)",
        keyword="stocbio or bsa"),
    mutation(
        "stocbio-neumann-step",
        (LINEAR_SOLVERS, "return step_size * total", "return total"),
        T_ALGORITHMS,
        "Neumann series without its factor eta: v = eta sum_q prod (I - eta H) b "
        "(Ji, Yang & Liang 2021, Eq. (8), Algorithm 3)",
        keyword="stocbio or neumann"),
    mutation(
        "bsa-truncation-scale",
        (ROUTINES, "return n_steps * step_size * v", "return step_size * v"),
        T_ALGORITHMS,
        "Ghadimi & Wang's Hessian-inverse estimate without its factor N "
        "(Ghadimi & Wang 2018, Algorithm 3)",
        keyword="bsa or truncated"),
    mutation(
        "ttsa-hypergradient-point",
        (solver("bilevel", "ttsa"),
         "grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer_batch)",
         "grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd, "
         "outer_batch)"),
        T_ALGORITHMS,
        "TTSA's grad F at (theta_k, lmbd_k) instead of (theta_{k+1}, lmbd_k) "
        "(Hong, Wai, Wang & Yang 2023, Algorithm 1)",
        keyword="ttsa"),
    mutation(
        "ttsa-step-exponent",
        [(solver("bilevel", "ttsa"), "self.inner_step = StepSizeSchedule(self.step_size, 2 / 5)",
          "self.inner_step = StepSizeSchedule(self.step_size, 3 / 5)"),
         (FUSED, 'theta = theta - decayed(hyper["inner_step"], 2 / 5, t)',
          'theta = theta - decayed(hyper["inner_step"], 3 / 5, t)')],
        T_ALGORITHMS,
        "TTSA's inner step beta_k ~ k^(-3/5) instead of k^(-2/5), both paths "
        "(Hong et al. 2023, Theorem 1)",
        keyword="ttsa"),
    mutation(
        "mrbo-momentum-schedule",
        [(FAMILIES, 'self.momentum_weight = StepSizeSchedule(self.momentum, 2 / 3, '
                    'name="momentum")',
          'self.momentum_weight = StepSizeSchedule(self.momentum, 1 / 3, name="momentum")'),
         (FUSED, 'weight = decayed(hyper["momentum"], 2 / 3, t)',
          'weight = decayed(hyper["momentum"], 1 / 3, t)')],
        T_ALGORITHMS,
        "MRBO / SUSTAIN momentum a_k ~ k^(-1/3) instead of k^(-2/3) (a_{k+1} ~ eta_k^2), "
        "both paths (Yang, Ji & Liang 2021, Algorithm 1)",
        keyword="mrbo or sustain"),
    mutation(
        "fused-storm-weight",
        (FUSED, "return value + (1 - weight) * (direction - previous_value)",
         "return value + weight * (direction - previous_value)"),
        T_BILEVEL_SOLVERS,
        "compiled STORM step d_k = g_k + a_k (d_{k-1} - g_{k-1}) instead of (1 - a_k) "
        "(Cutkosky & Orabona 2019, Eq. (1)), compiled path only (MRBO, SUSTAIN, FSLA)",
        keyword="compiled_iterations and mrbo"),
    mutation(
        "vrbo-lmbd-move-uncorrected",
        (solver("bilevel", "vrbo"),
         "self.move(self.theta, self.lmbd - alpha * self.outer_direction.direction)",
         "self.lmbd = self.lmbd - alpha * self.outer_direction.direction"),
        T_ALGORITHMS,
        "VRBO's SARAH estimates not updated after the move of lmbd "
        "(Yang, Ji & Liang 2021, Algorithm 2, as the authors' code)",
        keyword="vrbo"),
    mutation(
        "fsla-v-sign",
        [(solver("bilevel", "fsla"), "v = self.v - rho * (hessian_v - grad_theta_outer)",
          "v = self.v - rho * (hessian_v + grad_theta_outer)"),
         (FUSED, "lmbd, v, inner[1]) - grad_theta_outer)",
          "lmbd, v, inner[1]) + grad_theta_outer)")],
        T_ALGORITHMS,
        "FSLA's v-step on d2 G v + grad F instead of d2 G v - grad F, both paths "
        "(Li, Gu & Huang 2022, Algorithm 1)",
        keyword="fsla"),
    mutation(
        "fsla-previous-point",
        (solver("bilevel", "fsla"), "self.previous = (theta, lmbd, v)",
         "self.previous = (self.theta, lmbd, self.v)"),
        T_ALGORITHMS,
        "FSLA's STORM correction at (theta_{k-1}, v_{k-1}) instead of the previous "
        "hypergradient point (theta_k, lmbd_{k-1}, v_k) (Li, Gu & Huang 2022, Algorithm 1)",
        keyword="fsla"),
    mutation(
        "f2sa-bracket-sign",
        (solver("bilevel", "f2sa"), "- problem.inner_gradients(z, lmbd, i)[1]))",
         "+ problem.inner_gradients(z, lmbd, i)[1]))"),
        T_ALGORITHMS,
        "F2SA's first-order bracket grad_x G(y) + grad_x G(z) instead of - "
        "(Kwon, Kwon, Wright & Nowak 2023, Algorithm 1)",
        keyword="f2sa"),
    mutation(
        "f2sa-z-step",
        (solver("bilevel", "f2sa"), "z = z - gamma * problem.inner_gradient(z, lmbd, i1)",
         "z = z - alpha * problem.inner_gradient(z, lmbd, i1)"),
        T_ALGORITHMS,
        "F2SA's z-step with alpha_k (~ k^-5/7) instead of gamma_k (~ k^-4/7) "
        "(Kwon et al. 2023, Algorithm 1)",
        keyword="f2sa"),
    # -- sparse training: LinBreg, AdaBreg (Bungert, Roith, Tenbrinck & Burger 2022) ---------------
    mutation(
        "linbreg-dual-step-sign",
        (BREGMAN, 'torch._foreach_add_(duals, grads, alpha=-group["lr"])',
         'torch._foreach_add_(duals, grads, alpha=group["lr"])'),
        T_OPTIM,
        "LinBreg ascends: v_{k+1} = v_k - tau g_k (Bungert et al. 2022, Algorithm 1)"),
    mutation(
        "linbreg-dual-init",
        (BREGMAN, 'dual = dual + group["regularizer"].subgradient(parameter.detach())',
         'dual = dual - group["regularizer"].subgradient(parameter.detach())'),
        T_OPTIM,
        "v_0 = theta_0 / delta - p_0 instead of + p_0, p_0 in dJ(theta_0) "
        "(Bungert et al. 2022, initialization of Algorithm 1)"),
    mutation(
        "linbreg-momentum",
        (BREGMAN, 'torch._foreach_add_(buffers, grads, alpha=(1 - momentum) * group["lr"])',
         'torch._foreach_add_(buffers, grads, alpha=group["lr"])'),
        T_OPTIM,
        "LinBreg momentum m_{k+1} = beta m_k + tau g_k instead of (1 - beta) tau g_k "
        "(Bungert et al. 2022, Algorithm 2)"),
    mutation(
        "bregman-primal-delta",
        (BREGMAN, 'torch._foreach_mul_(params, group["delta"])',
         "torch._foreach_mul_(params, 1.0)"),
        T_OPTIM,
        "primal update prox_{delta J}(v) instead of prox_{delta J}(delta v) "
        "(Bungert et al. 2022, Algorithms 1-3)"),
    mutation(
        "adabreg-bias-correction",
        (BREGMAN, 'step_sizes.append(-group["lr"] / (1 - beta1 ** state["step"]))',
         'step_sizes.append(-group["lr"])'),
        T_OPTIM,
        "AdaBreg without the first moment's bias correction 1 / (1 - beta1^k) "
        "(Bungert et al. 2022, Algorithm 3; Kingma & Ba 2015, Algorithm 1)"),
    mutation(
        "adabreg-second-moment-correction",
        (BREGMAN, 'second_corrections.append(math.sqrt(1 - beta2 ** state["step"]))',
         'second_corrections.append(1 - beta2 ** state["step"])'),
        T_OPTIM,
        "AdaBreg's second-moment correction sqrt(s / (1 - beta2^k)) without the square root "
        "(Bungert et al. 2022, Algorithm 3)"),
    # -- CRATE (Yu et al. 2023; CRATE-alpha, Yang et al. 2024) -----------------------------------
    mutation(
        "crate-ista-threshold",
        (TRANSFORMERS, "return F.relu(tokens + self.eta * correction - self.eta * self.lmbd)",
         "return F.relu(tokens + self.eta * correction - self.lmbd)"),
        T_TRANSFORMERS,
        "CRATE's ISTA block thresholds at lmbd instead of eta lmbd: ReLU(Z + eta D^T (Z - D Z) "
        "- eta lmbd) (Yu et al. 2023, Sec. 2.4)",
        keyword="ista_block or coding_rate or layer_metrics"),
    mutation(
        "crate-alpha-second-ista-step",
        (TRANSFORMERS, "return F.relu(first - self.eta * gradient - threshold)",
         "return F.relu(first - threshold)"),
        T_TRANSFORMERS,
        "CRATE-alpha's second ISTA step without its gradient term: A_2 = ReLU(A_1 - eta D^T "
        "(D A_1 - Z) - eta lmbd) (Yang et al. 2024, ODL block)",
        keyword="ista_block or coding_rate or layer_metrics"),
    mutation(
        "crate-coding-rate-scale",
        (CODING_RATE, "unit.transpose(-2, -1), d / (n * eps_squared))",
         "unit.transpose(-2, -1), n / (d * eps_squared))"),
        T_TRANSFORMERS,
        "coding rate R(Z) = 1/2 logdet(I + n / (d eps^2) Z^T Z) instead of d / (n eps^2) "
        "(Yu et al. 2023, Sec. 2)",
        keyword="coding_rate or layer_metrics"),
    mutation(
        "crate-compression-sum-over-heads",
        (CODING_RATE, "return _half_logdet_identity_plus(gram, p / (n * eps_squared)).sum(-1)",
         "return _half_logdet_identity_plus(gram, p / (n * eps_squared)).mean(-1)"),
        T_TRANSFORMERS,
        "compression term averaged instead of summed over the K heads: R^c(Z, U) = sum_k "
        "R(U_k^T Z) (Yu et al. 2023, Sec. 2)",
        keyword="coding_rate or layer_metrics"),
    # -- image restoration: dictionary denoisers, PnP, constrained training ----------------------
    mutation(
        "dictionary-synthesis-layer-threshold",
        (DICTIONARY, "code = soft_threshold(code - gamma * F.conv2d(residual, weight), "
                     "gamma * lmbd)",
         "code = soft_threshold(code - gamma * F.conv2d(residual, weight), lmbd)"),
        T_INVERSE,
        "synthesis layer thresholds at lmbd instead of gamma lmbd: z <- ST(z - gamma W (W^T z "
        "- x), gamma lmbd) (Kowalski et al. 2024, eq. (11))",
        keyword="fista_solution or lmbd_overrides or warm_started"),
    mutation(
        "dictionary-analysis-layer-sign",
        (DICTIONARY,
         "code = (code + gamma * F.conv2d(x - F.conv_transpose2d(code, weight), weight)",
         "code = (code - gamma * F.conv2d(x - F.conv_transpose2d(code, weight), weight)"),
        T_INVERSE,
        "analysis layer ascends the dual: v <- clip(v + gamma W (x - W^T v), -lmbd, lmbd) "
        "(Kowalski et al. 2024, eq. (14))",
        keyword="fista_solution or lmbd_overrides or warm_started"),
    mutation(
        "dictionary-fista-threshold",
        (DICTIONARY, "new = soft_threshold(momentum_point - step * F.conv2d(residual, weight), "
                     "step * lmbd)",
         "new = soft_threshold(momentum_point - step * F.conv2d(residual, weight), lmbd)"),
        T_INVERSE,
        "reference FISTA's prox thresholds at lmbd instead of step lmbd "
        "(Beck & Teboulle 2009, FISTA step (4.1), on eq. (11) of Kowalski et al. 2024)",
        keyword="fista_solution or lmbd_overrides"),
    mutation(
        "dictionary-fista-analysis-projection",
        (DICTIONARY, "new = (momentum_point - step * F.conv2d(residual, weight)).clamp(-lmbd, "
                     "lmbd)",
         "new = (momentum_point - step * F.conv2d(residual, weight)).clamp(-step * lmbd, "
         "step * lmbd)"),
        T_INVERSE,
        "reference FISTA on the analysis dual projects on |v| <= step lmbd instead of "
        "|v| <= lmbd (Kowalski et al. 2024, eq. (14))",
        keyword="fista_solution or lmbd_overrides"),
    mutation(
        "pnp-warm-start-off",
        (RESTORERS, "x, code = self.denoiser(x_tilde, code if self.warm_start else None,",
         "x, code = self.denoiser(x_tilde, None,"),
        T_INVERSE,
        "PnP never warm-starts the denoiser's code: D_L(x_tilde, c_k) "
        "(Kowalski et al. 2024, Algorithm 2; Propositions 4.2 and 4.4)",
        keyword="warm_started"),
    mutation(
        "pnp-analysis-step-cap",
        (RESTORERS, "scaling = min(scaling, 1.0)", "scaling = min(scaling, 1.8)"),
        T_INVERSE,
        "warm-started analysis PnP keeps the dual step 1.8 / ||W||^2 instead of capping it at "
        "1 / ||W||^2 (Loris & Verhoeven 2011 step condition)",
        keyword="warm_started"),
    mutation(
        "restoration-constraint-inverted",
        (RESTORATION_TRAINING,
         "return norms[1:] / norms[:-1].clamp_min(1e-12) - (1 - self.epsilon)",
         "return norms[:-1] / norms[1:].clamp_min(1e-12) - (1 - self.epsilon)"),
        T_INVERSE,
        "restoration constraint inverted: c_l = g_{l+1} / g_l - (1 - eps) "
        "(Hadou et al. 2024, Sec. 5.2, GLOW-Prox)",
        keyword="constraint or constrained"),
    mutation(
        "restoration-lagrangian-sign",
        (RESTORATION_TRAINING, "loss = loss + (self.multipliers * constraints).sum()",
         "loss = loss - (self.multipliers * constraints).sum()"),
        T_INVERSE,
        "restoration Lagrangian loss - sum nu_l c_l instead of + (Hadou et al. 2024, "
        "problem (6) and Algorithm 1)",
        keyword="constraint or constrained"),
    mutation(
        "restoration-noise-injection-range",
        (RESTORATION_TRAINING, "last = self.network.n_layers - 2",
         "last = self.network.n_layers - 1"),
        T_INVERSE,
        "noise also injected into x_{L-1}: the law is x_0 .. x_{L-2} only "
        "(RestorationTrainer; Hadou et al. 2024, noisyOuts)",
        keyword="noise_injection"),
    mutation(
        "restoration-noise-injection-off",
        (RESTORATION_TRAINING, "return (x + noise / (index + 1)).clamp(0, 1)", "return x"),
        T_INVERSE,
        "restoration training injects no noise into x_0 .. x_{L-2} "
        "(Hadou et al. 2024, noisyOuts)",
        keyword="noise_injection"),
    mutation(
        "restoration-noise-injection-law",
        (RESTORATION_TRAINING, "return (x + noise / (index + 1)).clamp(0, 1)",
         "return (x + noise / (index + 2)).clamp(0, 1)"),
        T_INVERSE,
        "injected noise of norm 1 / (k + 2) instead of 1 / (k + 1) "
        "(Hadou et al. 2024, noisyOuts)",
        keyword="noise_injection"),
    # -- Lasso hyperparameters: coordinate descent, implicit differentiation -----------------------
    mutation(
        "cd-coordinate-step",
        (SPARSE_CD, "z = old + _column_dot(X, j, residual) / (n_samples * lipschitz[j])",
         "z = old + _column_dot(X, j, residual) / n_samples"),
        T_BILEVEL_LASSO,
        "coordinate update without 1 / L_j: z_j = theta_j + X_j^T r / (n L_j) "
        "(Bertrand et al. 2020, Algorithm 1)",
        keyword="coordinate_descent"),
    mutation(
        "cd-residual-update",
        (SPARSE_CD, "residual[i] -= X[i, j] * (new - old)\n        if signs.shape[0] > 0:",
         "residual[i] -= 0 * X[i, j] * (new - old)\n        if signs.shape[0] > 0:"),
        T_BILEVEL_LASSO,
        "the residual r = y - X theta not updated after a coordinate moves "
        "(Bertrand et al. 2020, Algorithm 1: r <- r - X_j (theta_j^new - theta_j^old))",
        keyword="coordinate_descent"),
    mutation(
        "cd-jacobian-offset-sign",
        (SPARSE_CD, "derivative -= alpha[j] * sign / lipschitz[j]",
         "derivative += alpha[j] * sign / lipschitz[j]"),
        T_BILEVEL_LASSO,
        "forward-mode CD: J_j <- |s_j| dz_j + exp(lmbd) s_j / L_j instead of - "
        "(Bertrand et al. 2020, Algorithm 1)",
        keyword="coordinate_descent"),
    mutation(
        "cd-adjoint-sign",
        (SPARSE_CD, "gradient[j] -= v_j * alpha[j] * sign / lipschitz[j]",
         "gradient[j] += v_j * alpha[j] * sign / lipschitz[j]"),
        T_BILEVEL_LASSO,
        "reverse-mode CD accumulates + exp(lmbd) s_j v_j / L_j instead of - "
        "(Bertrand et al. 2020, Sec. 3, backward ITD)",
        keyword="coordinate_descent"),
    mutation(
        "cd-implicit-forward-gauss-seidel",
        (SPARSE_CD, "jacobian[j, c] -= (product + offset[j, c]) / hessian[j, j]",
         "jacobian[j, c] -= (product - offset[j, c]) / hessian[j, j]"),
        T_BILEVEL_LASSO,
        "Gauss-Seidel on H_SS J = + exp(lmbd) s E instead of - (implicit forward, "
        "Bertrand et al. 2020, Algorithm 2)",
        keyword="implicit_forward"),
    mutation(
        "implicit-lmbd-gradient-sign",
        (SPARSE, "product = -self.regularization(lmbd) * torch.sign(theta) * v",
         "product = self.regularization(lmbd) * torch.sign(theta) * v"),
        T_BILEVEL_LASSO,
        "implicit hypergradient + exp(lmbd) s v instead of - exp(lmbd) s v "
        "(Bertrand et al. 2020, implicit differentiation on the support, Sec. 3)",
        keyword="reference_hypergradient or implicit"),
    mutation(
        "implicit-forward-offset-sign",
        (SPARSE_HYPERGRADIENTS,
         "offset = torch.diag(alpha * signs) if weighted else (alpha * signs)[:, None]",
         "offset = torch.diag(-alpha * signs) if weighted else (-alpha * signs)[:, None]"),
        T_BILEVEL_LASSO,
        "implicit forward iterates on H_SS J_S = + exp(lmbd_S) s E instead of - "
        "(Bertrand et al. 2020, Algorithm 2)",
        keyword="implicit_forward"),
    mutation(
        "itd-support-mask",
        (SPARSE_HYPERGRADIENTS,
         "self.jacobian = (signs.abs() * j - self.scalar_threshold * signs)[:, None]",
         "self.jacobian = (j - self.scalar_threshold * signs)[:, None]"),
        T_BILEVEL_LASSO,
        "ITD forward Jacobian not masked by |s_{k+1}| off the support: J_{k+1} = |s| (I - H/L) "
        "J_k - exp(lmbd) s / L (Bertrand et al. 2020, ISTA's forward mode)",
        keyword="itd"),
]


# -- the copy ----------------------------------------------------------------------------------
def repository_files(source):
    """Tracked files and untracked files that git does not ignore, as paths
    relative to ``source`` (deleted and submodule entries left out)."""
    files = []
    for extra in ([], ["--others", "--exclude-standard"]):
        output = subprocess.run(["git", "-C", str(source), "ls-files", "-z", *extra],
                                check=True, capture_output=True).stdout
        files += [name for name in output.decode().split("\0") if name]
    return sorted(name for name in dict.fromkeys(files) if (Path(source) / name).is_file())


def make_copy(source, destination=None):
    """A copy of the repository's files in a new temporary folder (or in
    ``destination``, which must not exist); returns its path."""
    source = Path(source).resolve()
    if destination is None:
        destination = Path(tempfile.mkdtemp(prefix="learnopt-mutations-"))
    else:
        destination = Path(destination)
        destination.mkdir(parents=True)
    destination = destination.resolve()
    if destination == source or source in destination.parents:
        raise ValueError(f"the copy {destination} must lie outside the repository {source}.")
    for name in repository_files(source):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    return destination


def test_environment(copy_root):
    """The environment of pytest in the copy: its root first on PYTHONPATH
    (before the editable install's finder), one thread, the interpreter's
    folder (the venv's console scripts, e.g. benchopt) first on PATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy_root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def check_copy_imports(copy_root):
    """Raise RuntimeError unless ``solvers_common`` imports from the copy."""
    output = subprocess.run(
        [sys.executable, "-c", "import solvers_common; print(solvers_common.__file__)"],
        cwd=copy_root, env=test_environment(copy_root), capture_output=True, text=True)
    location = Path(output.stdout.strip() or ".").resolve()
    if output.returncode != 0 or Path(copy_root).resolve() not in location.parents:
        raise RuntimeError(f"solvers_common does not import from the copy {copy_root}: "
                           f"{output.stdout.strip() or output.stderr.strip()}")


# -- applying a mutation -------------------------------------------------------------------------
def target_problems(root, mutations):
    """``{mutation id: [problem, ...]}`` for the mutations whose edits do not
    apply exactly once, in turn, to the files under ``root``."""
    problems = {}
    for item in mutations:
        texts = {}
        for edit in item.edits:
            path = Path(root) / edit.path
            if edit.path not in texts:
                if not path.is_file():
                    problems.setdefault(item.id, []).append(f"{edit.path}: no such file")
                    continue
                texts[edit.path] = path.read_text()
            count = texts[edit.path].count(edit.old)
            if count != 1:
                problems.setdefault(item.id, []).append(
                    f"{edit.path}: target found {count} times, not once: {edit.old!r}")
                continue
            if edit.old == edit.new:
                problems.setdefault(item.id, []).append(f"{edit.path}: the edit changes nothing")
            texts[edit.path] = texts[edit.path].replace(edit.old, edit.new)
        for name, text in texts.items():
            if name.endswith(".py"):
                try:
                    compile(text, name, "exec")
                except SyntaxError as error:
                    problems.setdefault(item.id, []).append(
                        f"{name}: the mutated file does not compile: {error}")
    return problems


class Copy:
    """A copy of the repository that mutations are applied to and restored
    from; every write gets a modification time a second past the previous
    write of that file (no stale bytecode or numba cache)."""

    def __init__(self, root):
        self.root = Path(root)
        self._last_mtime = {}

    def _path(self, name):
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"{name} is outside the copy {self.root}.")
        return path

    def _write(self, name, data):
        path = self._path(name)
        path.write_bytes(data)
        mtime = max(time.time(), self._last_mtime.get(name, path.stat().st_mtime) + 1.0)
        mtime = float(int(mtime) + 1)
        os.utime(path, (mtime, mtime))
        self._last_mtime[name] = mtime

    def apply(self, item):
        """Apply ``item``'s edits; returns the original bytes of each file."""
        originals = {}
        try:
            for edit in item.edits:
                path = self._path(edit.path)
                if edit.path not in originals:
                    originals[edit.path] = path.read_bytes()
                text = path.read_text()
                if text.count(edit.old) != 1:
                    raise ValueError(f"{item.id}: {edit.path}: target found "
                                     f"{text.count(edit.old)} times, not once.")
                self._write(edit.path, text.replace(edit.old, edit.new).encode())
        except BaseException:
            self.restore(originals)
            raise
        return originals

    def restore(self, originals):
        for name, data in originals.items():
            self._write(name, data)
            if self._path(name).read_bytes() != data:
                raise RuntimeError(f"{name} was not restored in the copy {self.root}.")

    def clear_caches(self):
        """Remove benchopt's result caches: a cached run would hide a mutation."""
        for cache in [self.root / "__cache__", *self.root.glob("*/__cache__")]:
            shutil.rmtree(cache, ignore_errors=True)


# -- running the tests ---------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    mutation: Mutation
    status: str  # caught, MISSED, STALE, ERROR
    seconds: float = 0.0
    failed: tuple = ()
    note: str = ""

    @property
    def caught(self):
        return self.status == "caught"


def pytest_command(tests, keyword=None, first_failure=False):
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
               "--no-header", *tests]
    if keyword:
        command += ["-k", keyword]
    if first_failure:
        command.append("-x")
    return command


FAILURE_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+?)(?: - .*)?$")


# The pytest processes running now (each in its own session, so that a timeout
# kills its whole process group): killed when the harness is interrupted.
_RUNNING = set()
_RUNNING_LOCK = threading.Lock()


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_running_tests():
    with _RUNNING_LOCK:
        for process in list(_RUNNING):
            _kill(process)


def run_tests(copy, tests, keyword=None, first_failure=False, timeout=None):
    """Run pytest in the copy: ``(return code or None on timeout, failed
    node ids, seconds, output tail)``."""
    copy.clear_caches()
    start = time.perf_counter()
    process = subprocess.Popen(pytest_command(tests, keyword, first_failure), cwd=copy.root,
                               env=test_environment(copy.root), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    try:
        output, _ = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        _kill(process)
        output, _ = process.communicate()
        code = None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(process)
    seconds = time.perf_counter() - start
    failed = tuple(dict.fromkeys(match.group(1) for match in map(FAILURE_LINE.match,
                                                                 output.splitlines())
                                 if match))
    return code, failed, seconds, "\n".join(output.strip().splitlines()[-5:])


def judge(item, code, failed, seconds, tail):
    """The outcome of a mutation run from pytest's return code: 1 (tests
    failed) caught, 0 MISSED, a timeout caught (the suite would not pass),
    anything else (no test selected, a collection or usage error) ERROR."""
    if code is None:
        return Outcome(item, "caught", seconds, failed, "timeout")
    if code == 1:
        return Outcome(item, "caught", seconds, failed)
    if code == 0:
        skipped = re.search(r"(\d+) skipped", tail)
        note = ""
        if skipped:
            passed = re.search(r"(\d+) passed", tail)
            note = (f"{skipped.group(1)} skipped" if passed else
                    "every selected test skipped")
        return Outcome(item, "MISSED", seconds, note=note)
    reason = "no test selected" if code == 5 else f"pytest exit status {code}"
    return Outcome(item, "ERROR", seconds, failed, f"{reason}: {tail.splitlines()[-1:]}")


def run_mutation(copy, item, first_failure=False, timeout=None):
    originals = copy.apply(item)
    try:
        result = run_tests(copy, item.tests, item.keyword, first_failure, timeout)
    finally:
        copy.restore(originals)
    return judge(item, *result)


def describe_tests(item):
    return " ".join(item.tests) + (f" -k {item.keyword!r}" if item.keyword else "")


def format_outcome(outcome, shown_failures=3):
    item = outcome.mutation
    failed = ", ".join(name.split("::", 1)[-1] for name in outcome.failed[:shown_failures])
    if len(outcome.failed) > shown_failures:
        failed += f" (+{len(outcome.failed) - shown_failures} more)"
    details = f"failed: {failed}" if failed else ""
    if outcome.note:
        details = f"{details}; {outcome.note}" if details else outcome.note
    return (f"{item.id} | {' + '.join(item.files)} | {item.description} | {outcome.status} | "
            f"{details or '-'} | {outcome.seconds:.1f} s")


def baseline_plan(mutations):
    """``{test: keyword or None}``: one unmutated pytest run per test file (or
    node id) that covers every selection of ``mutations`` that names it, the
    union of their ``-k`` expressions (the whole file when one has none)."""
    keywords = {}
    for item in mutations:
        for test in item.tests:
            keywords.setdefault(test, []).append(item.keyword)
    return {test: None if None in names else
            " or ".join(f"({name})" for name in dict.fromkeys(names))
            for test, names in keywords.items()}


def run(mutations, source=ROOT, jobs=1, first_failure=False, baseline=True, timeout=900.0,
        keep_copy=False, out=sys.stdout):
    """Run ``mutations`` in ``jobs`` copies of ``source``; prints one line per
    mutation and the summary to ``out``; returns the outcomes (in the order
    of ``mutations``). Interrupted (KeyboardInterrupt), it kills the running
    tests and removes the copies before raising."""
    started = time.perf_counter()
    outcomes = {}
    lock = threading.Lock()

    def report(outcome):
        with lock:
            outcomes[outcome.mutation.id] = outcome
            print(format_outcome(outcome), file=out, flush=True)

    problems = target_problems(source, mutations)
    for item in mutations:
        if item.id in problems:
            report(Outcome(item, "STALE", note="; ".join(problems[item.id])))
    runnable = [item for item in mutations if item.id not in outcomes]
    copies, roots = queue.Queue(), []
    pool = None
    try:
        for _ in range(max(1, min(jobs, len(runnable)))):
            root = make_copy(source)
            roots.append(root)
            check_copy_imports(root)
            copies.put(Copy(root))
        print(f"# copies: {', '.join(map(str, roots))} (solvers_common imports from each)",
              file=out, flush=True)

        def in_a_copy(function, *arguments):
            copy = copies.get()
            try:
                return function(copy, *arguments)
            finally:
                copies.put(copy)

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(roots))
        if baseline and runnable:
            plan = baseline_plan(runnable)
            futures = {pool.submit(in_a_copy, run_tests, (test,), keyword, False, timeout): test
                       for test, keyword in plan.items()}
            broken = {}
            for future in concurrent.futures.as_completed(futures):
                code, failed, _, _ = future.result()
                # (exit status 5, nothing selected, is each mutation's own ERROR)
                if code not in (0, 5):
                    test = futures[future]
                    broken[test] = (
                        f"baseline fails: {test}"
                        f"{' -k ' + repr(plan[test]) if plan[test] else ''}: "
                        f"{'timeout' if code is None else f'exit status {code}'}"
                        f"{' (' + ', '.join(failed[:3]) + ')' if failed else ''}")
            print(f"# baseline: {len(plan)} test files, {len(broken)} failing without a "
                  f"mutation{': ' + '; '.join(broken.values()) if broken else ''}",
                  file=out, flush=True)
            for item in runnable:
                reasons = [broken[test] for test in item.tests if test in broken]
                if reasons:
                    report(Outcome(item, "ERROR", note="; ".join(reasons)))
            runnable = [item for item in runnable if item.id not in outcomes]
        futures = [pool.submit(in_a_copy, run_mutation, item, first_failure, timeout)
                   for item in runnable]
        for future in concurrent.futures.as_completed(futures):
            report(future.result())
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        kill_running_tests()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        if keep_copy:
            print(f"# kept: {', '.join(map(str, roots))}", file=out)
        else:
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)
    ordered = [outcomes[item.id] for item in mutations]
    caught = sum(outcome.caught for outcome in ordered)
    print(f"caught {caught} / {len(ordered)}", file=out)
    for status in ("MISSED", "STALE", "ERROR"):
        ids = [outcome.mutation.id for outcome in ordered if outcome.status == status]
        if ids:
            print(f"{status}: {', '.join(ids)}", file=out)
    print(f"# {time.perf_counter() - started:.0f} s", file=out, flush=True)
    return ordered


def select(mutations, ids):
    known = {item.id: item for item in mutations}
    unknown = [name for name in ids if name not in known]
    if unknown:
        raise SystemExit(f"unknown mutation id(s): {', '.join(unknown)}; "
                         f"python ci/mutations.py --list shows them.")
    return [known[name] for name in ids]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--check", action="store_true",
                        help="only check that every target is found exactly once")
    parser.add_argument("--jobs", type=int, default=1,
                        help="mutations run in parallel, one copy each (default 1)")
    parser.add_argument("--first-failure", action="store_true",
                        help="stop each mutation's tests at the first failure (pytest -x)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not run the test selections unmutated first")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per pytest run (default 900; past it: caught)")
    parser.add_argument("--keep-copy", action="store_true", help="leave the copies on disk")
    arguments = parser.parse_args(argv)
    if arguments.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {arguments.jobs}.")
    if not arguments.timeout > 0:
        parser.error(f"--timeout must be positive, got {arguments.timeout}.")
    mutations = select(MUTATIONS, arguments.only) if arguments.only else MUTATIONS
    if arguments.list:
        for item in mutations:
            print(f"{item.id} | {' + '.join(item.files)} | {describe_tests(item)} | "
                  f"{item.description}")
        return 0
    if arguments.check:
        problems = target_problems(ROOT, mutations)
        for name, messages in problems.items():
            print(f"{name}: STALE: {'; '.join(messages)}")
        print(f"{len(mutations) - len(problems)} / {len(mutations)} targets found exactly once")
        return 1 if problems else 0
    # SIGTERM as Ctrl-C: the running tests are killed and the copies removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcomes = run(mutations, jobs=arguments.jobs, first_failure=arguments.first_failure,
                       baseline=not arguments.no_baseline, timeout=arguments.timeout,
                       keep_copy=arguments.keep_copy)
    except KeyboardInterrupt as interruption:
        print(f"interrupted ({interruption or 'Ctrl-C'}): tests killed, copies removed",
              file=sys.stderr)
        return 130
    return 0 if all(outcome.caught for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
