"""Each stochastic bilevel solver of benchmark_bilevel against its paper.

The solvers are driven through their own ``initialize()`` and
``run_iterations()`` on a small quadratic problem in float64, from a fixed
random state and with fixed mini-batches: the samplers are replaced by
scripts of random index batches, and the random truncation lengths of
Ghadimi and Wang's estimator come from a generator seeded as the solver's.
After a few iterations, every iterate must equal, to 1e-10, an independent
transcription of the paper's algorithm box written below in plain numpy,
with the derivatives read off the problem's definition

    G_i(y, x) = 1/2 y^T A_i y + y^T B_i x + a_i^T y,
    F_j(y, x) = 1/2 y^T H_j y + y^T C_j x + b_j^T y + 1/2 x^T E x

(solvers_common.bilevel.QuadraticProblem; a mini-batch averages the
per-sample matrices). The transcriptions use the papers' names: x is the
outer variable (the solvers' lmbd), y the inner one (theta). Where a paper
leaves a choice open (which mini-batch is drawn first, in which order the
i.i.d. factors of a product act) the transcription states the convention it
pins.

SOBA, SABA and SRBA (Dagréou et al. 2022 and 2024) draw whole blocks of
the samplers' partition (SABA's tables have one row per block): their
scripts are sequences of block numbers, on a problem whose blocks have
unequal sizes, and each runs through both of its implementations, ``step()``
on the problem's oracles and the compiled iteration of
solvers_common/bilevel/fused.py (run eagerly), each against the
transcription; SABA's tables and averages and SRBA's recursive directions are
compared too.

Below them, one property test per estimator family: with full batches the
recursive (STORM / SARAH) directions are the full-batch oracles, the
Neumann series with enough terms solves the linear system, Ghadimi and
Wang's randomly truncated product averages to the series, AmIGO's loops
converge to theta* and the linear system's solution, and F2SA's first-order
bracket tends to the hypergradient as the penalty grows.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark

from solvers_common.bilevel import (
    FULL_BATCH,
    MinibatchSampler,
    fused,
    make_quadratic_problem,
    random_truncation_length,
    stochastic_routines,
)

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
N_INNER, N_OUTER, BATCH_SIZE = 24, 20, 4
N_ITERATIONS = 4
TOLERANCE = dict(rtol=0, atol=1e-10)
ALL = slice(None)  # the full data, in the numpy transcriptions


@pytest.fixture(scope="module")
def solver_classes():
    return {solver.name: solver for solver in Benchmark(BENCHMARK).get_solvers()}


@pytest.fixture(scope="module")
def problem():
    # Large per-sample deviations (noise=0.5): every mini-batch gives
    # clearly different oracles, so that a wrong batch is seen.
    return make_quadratic_problem(np.random.default_rng(7), dim_inner=4, dim_outer=3,
                                  n_inner_samples=N_INNER, n_outer_samples=N_OUTER,
                                  noise=0.5)


class Oracles:
    """Mini-batch derivatives of the quadratic problem in numpy. A batch is an
    index array or ALL."""

    def __init__(self, problem):
        for name in ("A", "B", "a", "H", "C", "b", "E"):
            setattr(self, name, getattr(problem, name).numpy())

    def grad_y_g(self, y, x, batch):
        return self.A[batch].mean(0) @ y + self.B[batch].mean(0) @ x + self.a[batch].mean(0)

    def grad_x_g(self, y, batch):
        return self.B[batch].mean(0).T @ y

    def hess_yy_g(self, batch):
        return self.A[batch].mean(0)

    def cross_xy_g(self, batch):
        """d2_xy g, the matrix of v -> grad_x <grad_y g, v>."""
        return self.B[batch].mean(0).T

    def grad_y_f(self, y, x, batch):
        return self.H[batch].mean(0) @ y + self.C[batch].mean(0) @ x + self.b[batch].mean(0)

    def grad_x_f(self, y, x, batch):
        return self.C[batch].mean(0).T @ y + self.E @ x

    def hypergradient(self, y, x):
        """grad_x f - d2_xy g [d2_yy g]^{-1} grad_y f on the full data at (y, x)."""
        v = np.linalg.solve(self.hess_yy_g(ALL), self.grad_y_f(y, x, ALL))
        return self.grad_x_f(y, x, ALL) - self.cross_xy_g(ALL) @ v


def product(factors):
    """factors[-1] @ ... @ factors[0]: the first factor acts first."""
    result = np.eye(factors[0].shape[0]) if factors else None
    for factor in factors:
        result = factor @ result
    return result


def neumann_ji(o, rhs, eta, hessian_batches):
    """Ji, Yang and Liang (2021), Algorithm 3: eta sum_{q=0}^{Q} prod_{j<q}
    (I - eta d2_yy g(B_j)) rhs, Q = len(hessian_batches), one fresh batch per
    factor; the factor of the first drawn batch acts first."""
    identity = np.eye(len(rhs))
    factors = [identity - eta * o.hess_yy_g(batch) for batch in hessian_batches]
    return eta * sum(product(factors[:q]) @ rhs if q else rhs
                     for q in range(len(factors) + 1))


def neumann_ghadimi_wang(o, rhs, eta, n_terms, hessian_batches):
    """Ghadimi and Wang (2018), Algorithm 3 (Hessian inverse approximation),
    with eta in place of 1/L_g: N eta prod_{i=1}^{p} (I - eta d2_yy g(xi_i))
    rhs, p = len(hessian_batches) drawn uniformly in {0, ..., N - 1}."""
    identity = np.eye(len(rhs))
    factors = [identity - eta * o.hess_yy_g(batch) for batch in hessian_batches]
    return n_terms * eta * (product(factors) @ rhs if factors else rhs)


class ScriptedSampler:
    """Stands in for MinibatchSampler: hands out a fixed list of batches in
    order and counts them."""

    def __init__(self, batches):
        self.batches, self.count = batches, 0

    def sample(self):
        batch = self.batches[self.count]
        self.count += 1
        return (batch if isinstance(batch, slice) else torch.as_tensor(batch)), 0


def script(rng, n_samples, length=400):
    return [rng.choice(n_samples, BATCH_SIZE, replace=False) for _ in range(length)]


class Setting:
    """A fixed start (y0, x0, an auxiliary vector, a second inner point),
    scripts of inner and outer mini-batches, and the seed of the truncation
    lengths."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.y0, self.x0 = rng.standard_normal(4), rng.standard_normal(3)
        self.v0, self.z0 = rng.standard_normal(4), rng.standard_normal(4)
        self.inner, self.outer = script(rng, N_INNER), script(rng, N_OUTER)
        self.seed = 100 + seed

    def batches(self):
        """Fresh iterators over the scripts, for a transcription."""
        return iter(self.inner), iter(self.outer)

    def truncation_generator(self):
        return torch.Generator().manual_seed(self.seed)


def truncation_length(generator, n_terms):
    """p uniform in {0, ..., n_terms - 1} (Ghadimi and Wang 2018,
    Algorithm 3), drawn from the same stream as the solver's."""
    return int(torch.randint(n_terms, (1,), generator=generator))


def start_solver(solver_classes, problem, name, setting, **parameters):
    """The solver at iteration 0 from the setting's state, its samplers
    replaced by the setting's scripts."""
    solver = solver_classes[name].get_instance(device="cpu", dtype="float64",
                                               batch_size=BATCH_SIZE, **parameters)
    solver.set_objective(problem=problem)
    solver.inner_sampler = ScriptedSampler(setting.inner)
    solver.outer_sampler = ScriptedSampler(setting.outer)
    solver.generator = setting.truncation_generator()
    solver.theta = torch.tensor(setting.y0)
    solver.lmbd = torch.tensor(setting.x0)
    solver.iteration = 0
    solver.initialize()
    return solver


def assert_iterates(solver, setting, y, x, n_inner_used, n_outer_used):
    # The iterates moved: the comparison is not between two starting points.
    assert np.linalg.norm(x - setting.x0) > 1e-2 and np.linalg.norm(y - setting.y0) > 1e-2
    np.testing.assert_allclose(solver.theta.numpy(), y, **TOLERANCE)
    np.testing.assert_allclose(solver.lmbd.numpy(), x, **TOLERANCE)
    # As many mini-batches: none drawn and left unused, none reused.
    assert (solver.inner_sampler.count, solver.outer_sampler.count) == (n_inner_used,
                                                                        n_outer_used)


def assert_truncations_vary(setting, n_terms, n_draws):
    """The truncation lengths of the run take several values, one of them
    positive: the test sees the random truncation at work."""
    generator = setting.truncation_generator()
    lengths = [truncation_length(generator, n_terms) for _ in range(n_draws)]
    assert len(set(lengths)) > 1 and max(lengths) > 0, lengths


class Counted:
    """An iterator that counts what it hands out."""

    def __init__(self, iterable):
        self.iterator, self.count = iter(iterable), 0

    def __next__(self):
        self.count += 1
        return next(self.iterator)

    def __iter__(self):
        return self


# ---------------------------------------------------------------------------
# AmIGO
# ---------------------------------------------------------------------------


def amigo_reference(o, setting, alpha, beta, gamma, n_steps, n_iterations):
    """Arbel and Mairal, "Amortized implicit differentiation for stochastic
    bilevel optimization", ICLR 2022, Algorithm 1 with Algorithm 2 (SGD on
    y -> g(x_k, y), warm started) and Algorithm 3 (SGD on the quadratic
    z -> 1/2 z^T A z + z^T b, A = d2_yy g, b = grad_y f, warm started):
        y_k = InnerSolver(x_k, y_{k-1}):  T steps y <- y - alpha grad_y g(x_k, y; B_t)
        z_k = LinearSolver(x_k, y_k, z_{k-1}):  T steps z <- z - beta (A_t z + b)
        psi_k = grad_x f(x_k, y_k; B_f) + d2_xy g(x_k, y_k; B_g) z_k
        x_{k+1} = x_k - gamma psi_k
    z_k approximates -[d2_yy g]^{-1} grad_y f (the solvers' v is -z)."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    y, x, z = setting.y0, setting.x0, -setting.v0
    for _ in range(n_iterations):
        for _ in range(n_steps):
            y = y - alpha * o.grad_y_g(y, x, next(inner))
        outer_batch = next(outer)
        b = o.grad_y_f(y, x, outer_batch)
        for _ in range(n_steps):
            z = z - beta * (o.hess_yy_g(next(inner)) @ z + b)
        psi = o.grad_x_f(y, x, outer_batch) + o.cross_xy_g(next(inner)) @ z
        x = x - gamma * psi
    return y, x, z, inner.count, outer.count


def test_amigo_is_arbel_and_mairal_algorithm_1(solver_classes, problem):
    setting = Setting(0)
    parameters = dict(step_size=0.4, outer_ratio=2.0, n_inner_steps=3)
    solver = start_solver(solver_classes, problem, "amigo", setting, **parameters)
    solver.v = torch.tensor(setting.v0)
    solver.run_iterations(N_ITERATIONS)
    y, x, z, n_inner, n_outer = amigo_reference(
        Oracles(problem), setting, alpha=0.4, beta=0.4, gamma=0.2, n_steps=3,
        n_iterations=N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.v.numpy(), -z, **TOLERANCE)


# ---------------------------------------------------------------------------
# stocBiO and BSA (double loop, Neumann estimates)
# ---------------------------------------------------------------------------


def stocbio_reference(o, setting, alpha, beta, eta, n_inner_steps, n_terms, n_iterations):
    """Ji, Yang and Liang, "Bilevel optimization: convergence analysis and
    enhanced design", ICML 2021, Algorithm 2 (stocBiO) with Algorithm 3:
        y_k^t = y_k^{t-1} - alpha grad_y g(x_k, y_k^{t-1}; S_t), t <= D,
                y_k^0 = y_{k-1}^D
        v_Q = eta sum_{q} prod (I - eta d2_yy g(x_k, y_k^D; B_j)) grad_y f(.; D_F)
        grad Phi = grad_x f(x_k, y_k^D; D_F) - d2_xy g(x_k, y_k^D; D_G) v_Q
        x_{k+1} = x_k - beta grad Phi
    Draws in the order: the D inner batches, D_F, the Q batches B_j, D_G."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    y, x = setting.y0, setting.x0
    for _ in range(n_iterations):
        for _ in range(n_inner_steps):
            y = y - alpha * o.grad_y_g(y, x, next(inner))
        outer_batch = next(outer)
        hessian_batches = [next(inner) for _ in range(n_terms)]
        v = neumann_ji(o, o.grad_y_f(y, x, outer_batch), eta, hessian_batches)
        x = x - beta * (o.grad_x_f(y, x, outer_batch) - o.cross_xy_g(next(inner)) @ v)
    return y, x, inner.count, outer.count


def test_stocbio_is_ji_yang_liang_algorithm_2(solver_classes, problem):
    setting = Setting(1)
    solver = start_solver(solver_classes, problem, "stocbio", setting, step_size=0.4,
                          outer_ratio=2.0, n_inner_steps=3, n_neumann_steps=3)
    solver.run_iterations(N_ITERATIONS)
    y, x, n_inner, n_outer = stocbio_reference(
        Oracles(problem), setting, alpha=0.4, beta=0.2, eta=0.4, n_inner_steps=3, n_terms=3,
        n_iterations=N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)


def bsa_reference(o, setting, alpha, beta, eta, n_inner_steps, n_terms, n_iterations):
    """Ghadimi and Wang, "Approximation methods for bilevel programming",
    arXiv 2018, Algorithm 2 (BSA) with Algorithm 3:
        y_k: t SGD steps y <- y - alpha grad_y g(x_k, y; zeta), from y_{k-1}
        grad f(x_k, y_k) ~ grad_x f(.; xi) - d2_xy g(.; xi_0) H grad_y f(.; xi),
            H = N eta prod_{i=1}^{p} (I - eta d2_yy g(.; xi_i)),
            p uniform in {0, ..., N - 1}
        x_{k+1} = x_k - beta grad f
    Draws in the order: the t inner batches, xi, the p batches xi_i, xi_0."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    generator = setting.truncation_generator()
    y, x = setting.y0, setting.x0
    for _ in range(n_iterations):
        for _ in range(n_inner_steps):
            y = y - alpha * o.grad_y_g(y, x, next(inner))
        outer_batch = next(outer)
        p = truncation_length(generator, n_terms)
        hessian_batches = [next(inner) for _ in range(p)]
        v = neumann_ghadimi_wang(o, o.grad_y_f(y, x, outer_batch), eta, n_terms,
                                 hessian_batches)
        x = x - beta * (o.grad_x_f(y, x, outer_batch) - o.cross_xy_g(next(inner)) @ v)
    return y, x, inner.count, outer.count


def test_bsa_is_ghadimi_wang_algorithm_2(solver_classes, problem):
    setting = Setting(2)
    solver = start_solver(solver_classes, problem, "bsa", setting, step_size=0.4,
                          outer_ratio=2.0, n_inner_steps=2, n_neumann_steps=4)
    solver.run_iterations(N_ITERATIONS)
    y, x, n_inner, n_outer = bsa_reference(
        Oracles(problem), setting, alpha=0.4, beta=0.2, eta=0.4, n_inner_steps=2, n_terms=4,
        n_iterations=N_ITERATIONS)
    assert_truncations_vary(setting, 4, N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)


# ---------------------------------------------------------------------------
# TTSA
# ---------------------------------------------------------------------------


def ttsa_reference(o, setting, step_size, outer_ratio, eta, n_terms, n_iterations):
    """Hong, Wai, Wang and Yang, "A two-timescale stochastic algorithm
    framework for bilevel optimization: complexity analysis and application
    to actor-critic", SIAM J. Optim. 2023 (arXiv 2007.05170), Algorithm 1:
        y^{k+1} = y^k - beta_k h_g^k,     h_g^k = grad_y g(x^k, y^k; xi^k)
        x^{k+1} = x^k - alpha_k h_f^k,
    h_f^k the estimate of the hypergradient at (x^k, y^{k+1}) (the inner
    update comes first, and the outer one uses its result) by Ghadimi and
    Wang's Algorithm 3 on fresh samples. beta_k = step_size (k+1)^(-2/5),
    alpha_k = step_size / outer_ratio (k+1)^(-3/5) (the rates of the
    paper's Theorem 1). Draws: xi^k, the outer batch, the p Hessian batches,
    the cross batch."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    generator = setting.truncation_generator()
    y, x = setting.y0, setting.x0
    for k in range(n_iterations):
        beta_k = step_size / (k + 1) ** 0.4
        alpha_k = step_size / outer_ratio / (k + 1) ** 0.6
        y_next = y - beta_k * o.grad_y_g(y, x, next(inner))
        outer_batch = next(outer)
        p = truncation_length(generator, n_terms)
        hessian_batches = [next(inner) for _ in range(p)]
        v = neumann_ghadimi_wang(o, o.grad_y_f(y_next, x, outer_batch), eta, n_terms,
                                 hessian_batches)
        h_f = o.grad_x_f(y_next, x, outer_batch) - o.cross_xy_g(next(inner)) @ v
        y, x = y_next, x - alpha_k * h_f
    return y, x, inner.count, outer.count


def test_ttsa_is_hong_et_al_algorithm_1(solver_classes, problem):
    setting = Setting(3)
    solver = start_solver(solver_classes, problem, "ttsa", setting, step_size=0.5,
                          outer_ratio=2.0, n_neumann_steps=4)
    solver.run_iterations(N_ITERATIONS)
    y, x, n_inner, n_outer = ttsa_reference(Oracles(problem), setting, step_size=0.5,
                                            outer_ratio=2.0, eta=0.5, n_terms=4,
                                            n_iterations=N_ITERATIONS)
    assert_truncations_vary(setting, 4, N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)


# ---------------------------------------------------------------------------
# MRBO and SUSTAIN (STORM-type double momentum)
# ---------------------------------------------------------------------------


def double_momentum_reference(o, setting, step_size, outer_ratio, momentum, n_terms,
                              n_iterations, estimator):
    """The iteration shared by MRBO (Yang, Ji and Liang, "Provably faster
    algorithms for bilevel optimization", NeurIPS 2021, Algorithm 1) and
    SUSTAIN (Khanduri et al., "A near-optimal algorithm for stochastic
    bilevel optimization via double-momentum", NeurIPS 2021, Algorithm 1):
        u_k = grad_y g(x_k, y_k; B_y) + (1 - a_k)(u_{k-1} - grad_y g(x_{k-1}, y_{k-1}; B_y))
        v_k = Phi(x_k, y_k; B_x) + (1 - a_k)(v_{k-1} - Phi(x_{k-1}, y_{k-1}; B_x))
        y_{k+1} = y_k - beta_k u_k,   x_{k+1} = x_k - alpha_k v_k
    (u_0, v_0 the plain estimates), with the same samples at both points;
    eta_k = step_size (k+1)^(-1/3), beta_k = eta_k, alpha_k = eta_k /
    outer_ratio, a_k = momentum (k+1)^(-2/3) (the papers' a_{k+1} ~ eta_k^2).
    ``estimator`` draws the hypergradient's batches and returns Phi."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    generator = setting.truncation_generator()
    y, x, u, v = setting.y0, setting.x0, None, None
    y_previous = x_previous = None
    for k in range(n_iterations):
        eta_k, a_k = step_size / (k + 1) ** (1 / 3), momentum / (k + 1) ** (2 / 3)
        inner_batch = next(inner)
        phi = estimator(o, inner, outer, generator, n_terms, step_size)
        if k == 0:
            u, v = o.grad_y_g(y, x, inner_batch), phi(y, x)
        else:
            u = (o.grad_y_g(y, x, inner_batch)
                 + (1 - a_k) * (u - o.grad_y_g(y_previous, x_previous, inner_batch)))
            v = phi(y, x) + (1 - a_k) * (v - phi(y_previous, x_previous))
        y_previous, x_previous = y, x
        y, x = y - eta_k * u, x - eta_k / outer_ratio * v
    return y, x, inner.count, outer.count


def mrbo_estimator(o, inner, outer, generator, n_terms, eta):
    """MRBO's hypergradient estimate (Yang et al. 2021, the estimator of
    Ji et al.'s Algorithm 3): grad_x f(xi) - d2_xy g(zeta_0) eta sum_q prod
    (I - eta d2_yy g(zeta_j)) grad_y f(xi). Draws xi, zeta_0, zeta_1..Q."""
    outer_batch, cross_batch = next(outer), next(inner)
    hessian_batches = [next(inner) for _ in range(n_terms)]

    def phi(y, x):
        v = neumann_ji(o, o.grad_y_f(y, x, outer_batch), eta, hessian_batches)
        return o.grad_x_f(y, x, outer_batch) - o.cross_xy_g(cross_batch) @ v
    return phi


def sustain_estimator(o, inner, outer, generator, n_terms, eta):
    """SUSTAIN's hypergradient estimate (Khanduri et al. 2021, from
    Ghadimi and Wang's Algorithm 3): grad_x f(xi) - d2_xy g(zeta_0) Q eta
    prod_{i<=p} (I - eta d2_yy g(zeta_i)) grad_y f(xi), one p for both
    points. Draws p, xi, zeta_0, zeta_1..p."""
    p = truncation_length(generator, n_terms)
    outer_batch, cross_batch = next(outer), next(inner)
    hessian_batches = [next(inner) for _ in range(p)]

    def phi(y, x):
        v = neumann_ghadimi_wang(o, o.grad_y_f(y, x, outer_batch), eta, n_terms,
                                 hessian_batches)
        return o.grad_x_f(y, x, outer_batch) - o.cross_xy_g(cross_batch) @ v
    return phi


@pytest.mark.parametrize("name, estimator", [("mrbo", mrbo_estimator),
                                             ("sustain", sustain_estimator)])
def test_double_momentum_solvers_are_their_algorithm_1(solver_classes, problem, name,
                                                       estimator):
    setting = Setting(4)
    solver = start_solver(solver_classes, problem, name, setting, step_size=0.4,
                          outer_ratio=2.0, momentum=0.6, n_neumann_steps=3)
    solver.run_iterations(N_ITERATIONS)
    y, x, n_inner, n_outer = double_momentum_reference(
        Oracles(problem), setting, step_size=0.4, outer_ratio=2.0, momentum=0.6, n_terms=3,
        n_iterations=N_ITERATIONS, estimator=estimator)
    if name == "sustain":
        assert_truncations_vary(setting, 3, N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)


# ---------------------------------------------------------------------------
# VRBO (SARAH with periodic full passes)
# ---------------------------------------------------------------------------


def vrbo_reference(o, setting, alpha, beta, eta, n_inner_steps, n_terms, period,
                   n_iterations):
    """Yang, Ji and Liang, "Provably faster algorithms for bilevel
    optimization", NeurIPS 2021, Algorithm 2 (VRBO):
        if k mod q = 0:  u_k = grad_y g(x_k, y_k; S_1),  v_k = Phi(x_k, y_k; S_1)
                         (S_1: here the full data)
        x_{k+1} = x_k - alpha v_k
        inner loop, y_{k,0} = y_k, t = 0, ..., T - 1:
            y_{k,t+1} = y_{k,t} - beta u_{k,t}
        after every move of (x, y) from (x', y') to (x'', y''), on fresh S_2:
            u <- u + grad_y g(x'', y''; S_2) - grad_y g(x', y'; S_2)
            v <- v + Phi(x'', y''; S_2) - Phi(x', y'; S_2)
    (the authors' code also corrects the estimates for the move of x).
    Phi: MRBO's estimate with Q Neumann terms. Draws per correction: the
    inner batch of u, then xi, zeta_0, zeta_1..Q."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    y, x = setting.y0, setting.x0

    def phi(y, x, outer_batch, cross_batch, hessian_batches):
        v = neumann_ji(o, o.grad_y_f(y, x, outer_batch), eta, hessian_batches)
        return o.grad_x_f(y, x, outer_batch) - o.cross_xy_g(cross_batch) @ v

    def correction(new, old):
        inner_batch = next(inner)
        batches = next(outer), next(inner), [next(inner) for _ in range(n_terms)]
        return (o.grad_y_g(*new, inner_batch) - o.grad_y_g(*old, inner_batch),
                phi(*new, *batches) - phi(*old, *batches))

    for k in range(n_iterations):
        if k % period == 0:
            u, v = o.grad_y_g(y, x, ALL), phi(y, x, ALL, ALL, [ALL] * n_terms)
        x_next = x - alpha * v
        du, dv = correction((y, x_next), (y, x))
        u, v, x = u + du, v + dv, x_next
        for _ in range(n_inner_steps):
            y_next = y - beta * u
            du, dv = correction((y_next, x), (y, x))
            u, v, y = u + du, v + dv, y_next
    return y, x, inner.count, outer.count


def test_vrbo_is_yang_ji_liang_algorithm_2(solver_classes, problem):
    setting = Setting(5)
    # q = period_fraction (n + m) / batch_size = 0.2 * 44 / 4 = 2 (int part):
    # full passes at k = 0 and 2, recursive updates in between.
    period_fraction = 0.2
    period = int(period_fraction * (N_INNER + N_OUTER) / BATCH_SIZE)
    assert period == 2
    solver = start_solver(solver_classes, problem, "vrbo", setting, step_size=0.4,
                          outer_ratio=2.0, n_inner_steps=2, n_neumann_steps=3,
                          period_fraction=period_fraction)
    solver.run_iterations(N_ITERATIONS)
    y, x, n_inner, n_outer = vrbo_reference(
        Oracles(problem), setting, alpha=0.2, beta=0.4, eta=0.4, n_inner_steps=2, n_terms=3,
        period=period, n_iterations=N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)


# ---------------------------------------------------------------------------
# FSLA
# ---------------------------------------------------------------------------


def fsla_reference(o, setting, step_size, outer_ratio, momentum, n_iterations):
    """Li, Gu and Huang, "A fully single loop algorithm for bilevel
    optimization without Hessian inverse", AAAI 2022, Algorithm 1: one SGD
    step on y, one on the linear-system variable v (no Hessian inverse),
    STORM momentum on the hypergradient, one step on x:
        y_{k+1} = y_k - rho_k grad_y g(x_k, y_k; B_1)
        v_{k+1} = v_k - rho_k (d2_yy g(x_k, y_{k+1}; B_2) v_k - grad_y f(x_k, y_{k+1}; D_1))
        Phi(x, y, v) = grad_x f(x, y; D_2) - d2_xy g(x, y; B_3) v
        d_k = Phi(x_k, y_{k+1}, v_{k+1}) + (1 - a_k)(d_{k-1} - Phi(x_{k-1}, y_k, v_k))
        x_{k+1} = x_k - gamma_k d_k
    (d_0 = Phi(x_0, y_1, v_1)), both Phi on the same batches; rho_k =
    step_size (k+1)^(-1/2), gamma_k = rho_k / outer_ratio, a_k = momentum
    (k+1)^(-1/2). Draws per iteration: B_1, B_2, B_3, then D_1, D_2."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    y, x, v, d, x_previous = setting.y0, setting.x0, setting.v0, None, None
    for k in range(n_iterations):
        rho_k, a_k = step_size / (k + 1) ** 0.5, momentum / (k + 1) ** 0.5
        b1, b2, b3 = next(inner), next(inner), next(inner)
        d1, d2 = next(outer), next(outer)

        def phi(x, y, v):
            return o.grad_x_f(y, x, d2) - o.cross_xy_g(b3) @ v
        y_next = y - rho_k * o.grad_y_g(y, x, b1)
        v_next = v - rho_k * (o.hess_yy_g(b2) @ v - o.grad_y_f(y_next, x, d1))
        if k == 0:
            d = phi(x, y_next, v_next)
        else:
            d = phi(x, y_next, v_next) + (1 - a_k) * (d - phi(x_previous, y, v))
        x_previous = x
        x, y, v = x - rho_k / outer_ratio * d, y_next, v_next
    return y, x, v, inner.count, outer.count


def test_fsla_is_li_gu_huang_algorithm_1(solver_classes, problem):
    setting = Setting(6)
    solver = start_solver(solver_classes, problem, "fsla", setting, step_size=0.5,
                          outer_ratio=2.0, momentum=0.6)
    solver.v = torch.tensor(setting.v0)
    solver.previous = (solver.theta, solver.lmbd, solver.v)
    solver.run_iterations(N_ITERATIONS)
    y, x, v, n_inner, n_outer = fsla_reference(Oracles(problem), setting, step_size=0.5,
                                               outer_ratio=2.0, momentum=0.6,
                                               n_iterations=N_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.v.numpy(), v, **TOLERANCE)


# ---------------------------------------------------------------------------
# F2SA
# ---------------------------------------------------------------------------


def f2sa_reference(o, setting, step_size, outer_ratio, penalty_initial, n_inner_steps,
                   n_iterations):
    """Kwon, Kwon, Wright and Nowak, "A fully first-order method for
    stochastic bilevel optimization", ICML 2023, Algorithm 1 (F2SA):
        z_{k,t+1} = z_{k,t} - gamma_k grad_y g(x_k, z_{k,t}; phi_z)
        y_{k,t+1} = y_{k,t} - alpha_k (grad_y f(x_k, y_{k,t}; zeta_y)
                                       + lambda_k grad_y g(x_k, y_{k,t}; phi_y))
        x_{k+1} = x_k - xi alpha_k (grad_x f(x_k, y_{k+1}; zeta_x)
                  + lambda_k (grad_x g(x_k, y_{k+1}; phi_x) - grad_x g(x_k, z_{k+1}; phi_x)))
    T inner steps; alpha_k = step_size (k+1)^(-5/7), gamma_k = step_size
    (k+1)^(-4/7), lambda_k = penalty_initial (k+1)^(1/7), xi = 1 / outer_ratio.
    Draws per inner step: phi_z, phi_y, zeta_y; then zeta_x, phi_x. The
    solver's theta is z (started at the setting's y0), its y starts at the
    setting's z0."""
    inner, outer = (Counted(batches) for batches in setting.batches())
    z, y, x = setting.y0, setting.z0, setting.x0
    for k in range(n_iterations):
        alpha_k, gamma_k = step_size / (k + 1) ** (5 / 7), step_size / (k + 1) ** (4 / 7)
        lambda_k = penalty_initial * (k + 1) ** (1 / 7)
        for _ in range(n_inner_steps):
            phi_z, phi_y, zeta_y = next(inner), next(inner), next(outer)
            z, y = (z - gamma_k * o.grad_y_g(z, x, phi_z),
                    y - alpha_k * (o.grad_y_f(y, x, zeta_y) + lambda_k * o.grad_y_g(y, x, phi_y)))
        zeta_x, phi_x = next(outer), next(inner)
        h_x = o.grad_x_f(y, x, zeta_x) + lambda_k * (o.grad_x_g(y, phi_x) - o.grad_x_g(z, phi_x))
        x = x - alpha_k / outer_ratio * h_x
    return z, y, x, inner.count, outer.count


def test_f2sa_is_kwon_et_al_algorithm_1(solver_classes, problem):
    setting = Setting(8)
    solver = start_solver(solver_classes, problem, "f2sa", setting, step_size=0.3,
                          outer_ratio=0.5, penalty_initial=2.0, n_inner_steps=2)
    solver.y = torch.tensor(setting.z0)
    solver.run_iterations(N_ITERATIONS)
    z, y, x, n_inner, n_outer = f2sa_reference(Oracles(problem), setting, step_size=0.3,
                                               outer_ratio=0.5, penalty_initial=2.0,
                                               n_inner_steps=2, n_iterations=N_ITERATIONS)
    assert_iterates(solver, setting, z, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.y.numpy(), y, **TOLERANCE)


# ---------------------------------------------------------------------------
# SOBA, SABA and SRBA (Dagréou et al.), through both implementations
# ---------------------------------------------------------------------------

# 23 inner samples in blocks of 5, 4, 5, 4, 5 and 18 outer ones in blocks of
# 4, 5, 5, 4: SAGA's averages weigh the blocks by their shares of the
# samples, and the compiled iterations pad the short blocks.
N_BLOCK_INNER, N_BLOCK_OUTER, BLOCK_SIZE = 23, 18, 5
# Block numbers of the successive mini-batches: first visits (SABA's zero
# rows) and returns to a block (its stored row) early on.
INNER_BLOCKS = [3, 1, 3, 0, 4, 1, 2, 3]
OUTER_BLOCKS = [2, 0, 2, 3, 1, 0, 3, 2]
# Eight iterations, two chunks of four on the compiled path.
N_BLOCK_ITERATIONS, CHUNK_LENGTH = len(INNER_BLOCKS), 4
IMPLEMENTATIONS = ["oracles", "compiled"]


@pytest.fixture(scope="module")
def block_problem():
    return make_quadratic_problem(np.random.default_rng(8), dim_inner=4, dim_outer=3,
                                  n_inner_samples=N_BLOCK_INNER,
                                  n_outer_samples=N_BLOCK_OUTER, noise=0.5)


class ScriptedBlocks(MinibatchSampler):
    """A MinibatchSampler whose block numbers follow a script, handed out by
    ``sample()`` (the oracle path) or ``sample_block_ids()`` (the compiled
    path), and counted."""

    def __init__(self, n_samples, script):
        super().__init__(n_samples, BLOCK_SIZE, generator=None)
        self.script, self.count = script, 0

    def sample(self):
        (block,) = self.sample_block_ids(1).tolist()
        return self.batches[block], block

    def sample_block_ids(self, n_batches):
        assert self.count + n_batches <= len(self.script), "the script ran out"
        ids = self.script[self.count:self.count + n_batches]
        self.count += n_batches
        return torch.tensor(ids, dtype=torch.int64)


class BlockSetting:
    """A fixed start (y0, x0; v0 = 0, the solvers' start), the problem's
    blocks (slices, as MinibatchSampler splits the samples) and the scripts
    of inner and outer blocks."""

    def __init__(self, problem, seed):
        rng = np.random.default_rng(seed)
        self.y0, self.x0 = rng.standard_normal(4), rng.standard_normal(3)
        self.inner_blocks = MinibatchSampler(problem.n_inner_samples, BLOCK_SIZE, None).batches
        self.outer_blocks = MinibatchSampler(problem.n_outer_samples, BLOCK_SIZE, None).batches
        assert sorted({block.stop - block.start for block in self.inner_blocks}) == [4, 5]
        assert sorted({block.stop - block.start for block in self.outer_blocks}) == [4, 5]

    def batches(self):
        """Fresh counted iterators over the scripts, as (block number, slice)."""
        return (Counted((i, self.inner_blocks[i]) for i in INNER_BLOCKS),
                Counted((j, self.outer_blocks[j]) for j in OUTER_BLOCKS))


def start_block_solver(solver_classes, problem, name, setting, implementation, **parameters):
    """The solver at iteration 0 from the setting's start, its samplers
    following the scripts. ``implementation="compiled"`` runs the compiled
    path (``initial_carry``, ``draw_block_ids``, chunks of
    ``compiled_iteration``, ``read_carry``) with the chunks run eagerly:
    torch.compile of one takes 7 to 26 s on this machine, and its agreement
    with the eager chunk is test_bilevel_solvers.py's
    test_compiled_iterations_are_the_oracle_iterations."""
    solver = solver_classes[name].get_instance(
        device="cpu", dtype="float64", batch_size=BLOCK_SIZE, eval_freq=CHUNK_LENGTH,
        implementation=implementation, **parameters)
    solver.set_objective(problem=problem)
    assert solver.compiled == (implementation == "compiled")
    if solver.compiled:
        assert solver.chunk_length == CHUNK_LENGTH
        solver.chunk = fused.chunk_function(type(solver).compiled_iteration, solver.device,
                                            compiled=False)
    solver.inner_sampler = ScriptedBlocks(problem.n_inner_samples, INNER_BLOCKS)
    solver.outer_sampler = ScriptedBlocks(problem.n_outer_samples, OUTER_BLOCKS)
    solver.theta, solver.lmbd = torch.tensor(setting.y0), torch.tensor(setting.x0)
    solver.iteration = 0
    solver.initialize()
    return solver


def framework_directions(o, y, v, x, inner_batch, outer_batch):
    """Dagréou, Ablin, Vaiter and Moreau (2022), Eq. (5)-(7), on one inner and
    one outer batch (SRBA's too, Dagréou et al. 2024, Eq. (2)):
        D_y = grad_y G_i(y, x),
        D_v = d2_yy G_i(y, x) v + grad_y F_j(y, x),
        D_x = d2_xy G_i(y, x) v + grad_x F_j(y, x),
    v estimating -[d2_yy G]^{-1} grad_y F."""
    return (o.grad_y_g(y, x, inner_batch),
            o.hess_yy_g(inner_batch) @ v + o.grad_y_f(y, x, outer_batch),
            o.cross_xy_g(inner_batch) @ v + o.grad_x_f(y, x, outer_batch))


def soba_reference(o, setting, rho_0, gamma_0, exponent, n_iterations):
    """Dagréou, Ablin, Vaiter and Moreau, "A framework for bilevel
    optimization that enables stochastic and global variance reduction
    algorithms", NeurIPS 2022, Algorithm 1 (SOBA): at iteration t, draw
    i and j, and from the same point (y^t, v^t, x^t)
        y^{t+1} = y^t - rho_t D_y^t,  v^{t+1} = v^t - rho_t D_v^t,
        x^{t+1} = x^t - gamma_t D_x^t,
    the directions of Eq. (5)-(7) on batches i (inner) and j (outer).
    Algorithm 1 takes the steps as inputs; here the solver's documented
    schedule (the reference benchmark's), rho_t = rho_0 / (t+1)^e and
    gamma_t = gamma_0 / (t+1)^e, one exponent e for both; v^0 = 0."""
    inner, outer = setting.batches()
    y, v, x = setting.y0, np.zeros_like(setting.y0), setting.x0
    for t in range(n_iterations):
        (_, inner_batch), (_, outer_batch) = next(inner), next(outer)
        d_y, d_v, d_x = framework_directions(o, y, v, x, inner_batch, outer_batch)
        rho_t, gamma_t = rho_0 / (t + 1) ** exponent, gamma_0 / (t + 1) ** exponent
        y, v, x = y - rho_t * d_y, v - rho_t * d_v, x - gamma_t * d_x
    return y, v, x, inner.count, outer.count


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_soba_is_dagreou_et_al_algorithm_1(solver_classes, block_problem, implementation):
    setting = BlockSetting(block_problem, 10)
    # outer_ratio 2: a wrong outer step (gamma_t = rho_t) is seen.
    solver = start_block_solver(solver_classes, block_problem, "soba", setting, implementation,
                                step_size=0.4, outer_ratio=2.0, step_size_exponent=0.5)
    solver.run_iterations(N_BLOCK_ITERATIONS)
    y, v, x, n_inner, n_outer = soba_reference(Oracles(block_problem), setting, rho_0=0.4,
                                               gamma_0=0.2, exponent=0.5,
                                               n_iterations=N_BLOCK_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.v.numpy(), v, **TOLERANCE)


def saba_reference(o, setting, rho, gamma, n_iterations):
    """Dagréou, Ablin, Vaiter and Moreau (2022), Algorithm 2 (SABA): SOBA
    with each of the five oracles of D_y, D_v and D_x (grad_y G_i,
    d2_yy G_i v, d2_xy G_i v on inner blocks; grad_y F_j, grad_x F_j on outer
    blocks) replaced by its SAGA estimate (Defazio, Bach and Lacoste-Julien
    2014): with phi the oracle's new value on block i and table[b] its value
    at block b's last visit,
        S = phi - table[i] + sum_b share_b table[b],   then table[i] = phi,
    the average taken over the table before the update; share_b = |b| / n,
    the block's share of the samples (the blocks are the mini-batches);
    constant steps rho, gamma. The table starts at zero, the solver's
    documented start (the reference benchmark's mode_init_memory="zero").
    The average is recomputed from the table at every use, where the solver
    keeps a running one. Returns the tables and their averages too."""
    inner, outer = setting.batches()
    y, v, x = setting.y0, np.zeros_like(setting.y0), setting.x0
    shares = [np.array([(b.stop - b.start) / n for b in blocks])
              for blocks, n in ((setting.inner_blocks, o.A.shape[0]),
                                (setting.outer_blocks, o.H.shape[0]))]
    # grad_y G, d2_yy G v, d2_xy G v, grad_y F, grad_x F: (inner/outer, size)
    sides = [(0, len(y)), (0, len(y)), (0, len(x)), (1, len(y)), (1, len(x))]
    tables = [np.zeros((len(shares[side]), size)) for side, size in sides]
    for _ in range(n_iterations):
        (i, inner_batch), (j, outer_batch) = next(inner), next(outer)
        values = (o.grad_y_g(y, x, inner_batch), o.hess_yy_g(inner_batch) @ v,
                  o.cross_xy_g(inner_batch) @ v, o.grad_y_f(y, x, outer_batch),
                  o.grad_x_f(y, x, outer_batch))
        estimates = []
        for table, (side, _), value in zip(tables, sides, values):
            block = (i, j)[side]
            estimates.append(value - table[block] + shares[side] @ table)
            table[block] = value
        grad_y_g, hessian_v, cross_v, grad_y_f, grad_x_f = estimates
        y, v, x = y - rho * grad_y_g, v - rho * (hessian_v + grad_y_f), x - gamma * (
            cross_v + grad_x_f)
    averages = [shares[side] @ table for table, (side, _) in zip(tables, sides)]
    return y, v, x, tables, averages, inner.count, outer.count


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_saba_is_dagreou_et_al_algorithm_2(solver_classes, block_problem, implementation):
    setting = BlockSetting(block_problem, 11)
    # A block comes back (its stored row is read) before another's first
    # visit (a zero row) in both scripts.
    for script in (INNER_BLOCKS, OUTER_BLOCKS):
        first_return = next(t for t, block in enumerate(script) if block in script[:t])
        assert first_return < max(script.index(block) for block in script)
    solver = start_block_solver(solver_classes, block_problem, "saba", setting, implementation,
                                step_size=0.4, outer_ratio=2.0)
    solver.run_iterations(N_BLOCK_ITERATIONS)
    y, v, x, tables, averages, n_inner, n_outer = saba_reference(
        Oracles(block_problem), setting, rho=0.4, gamma=0.2, n_iterations=N_BLOCK_ITERATIONS)
    assert_iterates(solver, setting, y, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.v.numpy(), v, **TOLERANCE)
    # The memory in the solver's order: grad_theta G, d2_theta G v,
    # d2_(lmbd,theta) G v, grad_theta F, grad_lmbd F.
    if solver.compiled:
        memories = solver.carry[1]
    else:
        memories = [(memory.table, memory.average) for memory in solver.memory.values()]
    assert len(memories) == 5
    for (table, average), expected_table, expected_average in zip(memories, tables, averages):
        np.testing.assert_allclose(table.numpy(), expected_table, **TOLERANCE)
        np.testing.assert_allclose(average.numpy(), expected_average, **TOLERANCE)


def srba_reference(o, setting, rho, gamma, period, n_iterations):
    """Dagréou, Moreau, Vaiter and Ablin, "A lower bound and a near-optimal
    algorithm for bilevel empirical risk minimization", AISTATS 2024
    (arXiv 2302.08766), Algorithm 1 (SRBA), an outer loop over periods of
    q iterations, with z = (y, v, x):
        D^{k,0} = (D_y, D_v, D_x)(z^{k,0}) on the full data,
        z^{k,1} = z^{k,0} - (rho D_y, rho D_v, gamma D_x)^{k,0},
        for t = 1, ..., q - 1, on fresh inner and outer batches i, j:
            D^{k,t} = D^{k,t-1} + D(z^{k,t}; i, j) - D(z^{k,t-1}; i, j)
            z^{k,t+1} = z^{k,t} - (rho D_y, rho D_v, gamma D_x)^{k,t},
        z^{k+1,0} = z^{k,q},
    the directions of Eq. (2) (SOBA's); SARAH's recursion (Nguyen et al.
    2017), both differences on the same batches. The projection of v on a
    ball, there for the analysis, is left out (as by the solver and the
    reference benchmark). Stopped after ``n_iterations`` steps in all.
    Returns the directions of the last step too."""
    inner, outer = setting.batches()
    z = (setting.y0, np.zeros_like(setting.y0), setting.x0)
    z_previous, steps, n_steps = None, (rho, rho, gamma), 0
    while n_steps < n_iterations:
        directions = framework_directions(o, *z, ALL, ALL)
        for t in range(period):
            if n_steps == n_iterations:
                break
            if t > 0:
                (_, inner_batch), (_, outer_batch) = next(inner), next(outer)
                new = framework_directions(o, *z, inner_batch, outer_batch)
                old = framework_directions(o, *z_previous, inner_batch, outer_batch)
                directions = tuple(d + a - b for d, a, b in zip(directions, new, old))
            z_previous = z
            z = tuple(w - step * d for w, step, d in zip(z, steps, directions))
            n_steps += 1
    return (*z, directions, inner.count, outer.count)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_srba_is_dagreou_et_al_2024_algorithm_1(solver_classes, block_problem, implementation):
    setting = BlockSetting(block_problem, 12)
    # q = period_fraction (n + m) / batch_size = 0.4 * 41 / 5 = 3 (int part):
    # full passes at t = 0, 3 and 6, two recursive steps after each; the
    # second chunk (t = 4 to 7) starts within a period.
    solver = start_block_solver(solver_classes, block_problem, "srba", setting, implementation,
                                step_size=0.4, outer_ratio=2.0, period_fraction=0.4)
    assert solver.period == 3
    solver.run_iterations(N_BLOCK_ITERATIONS)
    y, v, x, directions, n_inner, n_outer = srba_reference(
        Oracles(block_problem), setting, rho=0.4, gamma=0.2, period=3,
        n_iterations=N_BLOCK_ITERATIONS)
    assert (n_inner, n_outer) == (5, 5)  # one batch each per recursive step
    assert_iterates(solver, setting, y, x, n_inner, n_outer)
    np.testing.assert_allclose(solver.v.numpy(), v, **TOLERANCE)
    if solver.compiled:
        solver_directions = solver.carry[4]
    else:
        solver_directions = [estimator.direction for estimator in solver.directions]
    for value, expected in zip(solver_directions, directions):
        np.testing.assert_allclose(value.numpy(), expected, **TOLERANCE)


# ---------------------------------------------------------------------------
# Properties of the estimators
# ---------------------------------------------------------------------------


class FullBatchSampler:
    def sample(self):
        return FULL_BATCH, 0


@pytest.fixture(scope="module")
def well_conditioned_problem():
    # Inner curvatures in [0.5, 1]: with eta = 1, the Neumann series'
    # remainder after Q terms is at most 0.5^Q.
    return make_quadratic_problem(np.random.default_rng(11), dim_inner=4, dim_outer=3,
                                  n_inner_samples=N_INNER, n_outer_samples=N_OUTER,
                                  mu_inner=0.5, noise=0.5)


def start_full_batch(solver_classes, problem, name, **parameters):
    setting = Setting(9)
    solver = start_solver(solver_classes, problem, name, setting, **parameters)
    solver.inner_sampler = solver.outer_sampler = FullBatchSampler()
    return solver


RECURSIVE_SETTINGS = {
    "mrbo": dict(momentum=0.5, n_neumann_steps=60),
    "sustain": dict(momentum=0.5, n_neumann_steps=60),
    # period (n + m) / batch_size = 11 iterations: one full pass, at k = 0.
    "vrbo": dict(n_inner_steps=2, n_neumann_steps=60, period_fraction=1.0),
    "fsla": dict(momentum=0.5),
}


@pytest.mark.parametrize("name", sorted(RECURSIVE_SETTINGS))
def test_recursive_directions_with_full_batches_are_the_full_batch_oracles(
        solver_classes, well_conditioned_problem, name):
    """STORM (MRBO, SUSTAIN, FSLA) and SARAH (VRBO) with the full data at both
    points: d_k = g(z_k) + (1 - a)(d_{k-1} - g(z_{k-1})) = g(z_k) by
    induction, whatever the momentum; with 60 Neumann terms at eta = 1 the
    hypergradient estimate is the exact grad_x f - d2_xy g [d2_yy g]^{-1}
    grad_y f at the point."""
    o = Oracles(well_conditioned_problem)
    solver = start_full_batch(solver_classes, well_conditioned_problem, name, step_size=1.0,
                              outer_ratio=2.0, **RECURSIVE_SETTINGS[name])
    solver.run_iterations(5)
    if name == "fsla":
        # The direction of the last step, taken at (theta_{k+1}, lmbd_k, v_{k+1}).
        theta, lmbd, v = (t.numpy() for t in solver.previous)
        expected = o.grad_x_f(theta, lmbd, ALL) - o.cross_xy_g(ALL) @ v
        np.testing.assert_allclose(solver.direction.direction.numpy(), expected, **TOLERANCE)
        return
    # MRBO's and SUSTAIN's directions of the last step were taken at the
    # previous point; VRBO's have been moved along to the current one.
    point = (solver.theta, solver.lmbd) if name == "vrbo" else solver.previous
    theta, lmbd = (t.numpy() for t in point)
    np.testing.assert_allclose(solver.inner_direction.direction.numpy(),
                               o.grad_y_g(theta, lmbd, ALL), **TOLERANCE)
    if name != "sustain":  # SUSTAIN's truncation is random even on full batches
        np.testing.assert_allclose(solver.outer_direction.direction.numpy(),
                                   o.hypergradient(theta, lmbd), **TOLERANCE)


def test_neumann_series_with_enough_terms_solves_the_linear_system(
        solver_classes, well_conditioned_problem):
    """stocBiO's estimate (Ji et al. 2021, Algorithm 3) on full batches with
    Q = 60 terms at eta = 1: [d2_yy g]^{-1} b up to 0.5^60."""
    o = Oracles(well_conditioned_problem)
    solver = start_full_batch(solver_classes, well_conditioned_problem, "stocbio",
                              step_size=1.0, n_neumann_steps=60)
    rhs = np.random.default_rng(0).standard_normal(4)
    estimate = solver.inverse_hessian_vector(solver.theta, solver.lmbd, torch.tensor(rhs))
    np.testing.assert_allclose(estimate.numpy(), np.linalg.solve(o.hess_yy_g(ALL), rhs),
                               **TOLERANCE)


def test_randomly_truncated_product_averages_to_the_neumann_series(
        solver_classes, well_conditioned_problem, monkeypatch):
    """Ghadimi and Wang (2018), Algorithm 3, the estimator of BSA, TTSA and
    SUSTAIN: E_p[N eta (I - eta A)^p b] over p uniform in {0, ..., N - 1} is
    eta sum_{p<N} (I - eta A)^p b, which solves A v = b as N grows. Each p
    enumerated on full batches, through BSA's inverse_hessian_vector."""
    o = Oracles(well_conditioned_problem)
    n_terms = 60
    solver = start_full_batch(solver_classes, well_conditioned_problem, "bsa", step_size=1.0,
                              n_neumann_steps=n_terms)
    rhs = torch.tensor(np.random.default_rng(1).standard_normal(4))
    estimates = []
    for p in range(n_terms):
        monkeypatch.setattr(stochastic_routines, "random_truncation_length",
                            lambda n_steps, generator, p=p: p)
        estimates.append(solver.inverse_hessian_vector(solver.theta, solver.lmbd,
                                                       rhs).numpy())
    monkeypatch.undo()
    np.testing.assert_allclose(np.mean(estimates, 0),
                               np.linalg.solve(o.hess_yy_g(ALL), rhs.numpy()), **TOLERANCE)
    # Unpatched, one draw is the term of the generator's p.
    solver.generator = torch.Generator().manual_seed(5)
    p = truncation_length(torch.Generator().manual_seed(5), n_terms)
    np.testing.assert_allclose(
        solver.inverse_hessian_vector(solver.theta, solver.lmbd, rhs).numpy(), estimates[p],
        **TOLERANCE)


def test_truncation_length_is_uniform_on_zero_to_n_minus_one():
    generator = torch.Generator().manual_seed(0)
    draws = np.array([random_truncation_length(5, generator) for _ in range(5000)])
    counts = np.bincount(draws, minlength=5)
    assert draws.min() == 0 and draws.max() == 4 and len(counts) == 5
    # Each value 1000 times on average; 5 standard deviations is about 140.
    assert np.all(np.abs(counts - 1000) < 150), counts


def test_amigo_loops_with_full_batches_converge_to_theta_star_and_the_system_solution(
        solver_classes, well_conditioned_problem):
    """AmIGO with lmbd frozen (outer_ratio 1e12) and full batches: the
    warm-started SGD loops converge to theta*(lmbd) and to
    [d2_yy g]^{-1} grad_y f(theta*, lmbd) (Arbel and Mairal 2022, the
    amortization argument of Section 3)."""
    o = Oracles(well_conditioned_problem)
    solver = start_full_batch(solver_classes, well_conditioned_problem, "amigo",
                              step_size=1.0, outer_ratio=1e12, n_inner_steps=10)
    solver.run_iterations(8)
    theta, lmbd = solver.theta.numpy(), solver.lmbd.numpy()
    A = o.hess_yy_g(ALL)
    theta_star = -np.linalg.solve(A, o.B.mean(0) @ lmbd + o.a.mean(0))
    np.testing.assert_allclose(theta, theta_star, **TOLERANCE)
    np.testing.assert_allclose(solver.v.numpy(),
                               np.linalg.solve(A, o.grad_y_f(theta_star, lmbd, ALL)),
                               **TOLERANCE)


def test_f2sa_bracket_tends_to_the_hypergradient_as_the_penalty_grows(
        solver_classes, well_conditioned_problem):
    """F2SA (Kwon et al. 2023): at z = theta*(x) and y = argmin f + lambda g,
    the bracket grad_x f(y) + lambda (grad_x g(y) - grad_x g(z)) is grad h(x)
    + O(1/lambda), the bias that the growing penalty removes. The inner loops,
    on full batches, stay at these minimizers, and the step of x reveals the
    bracket."""
    o = Oracles(well_conditioned_problem)
    A, B, a = o.A.mean(0), o.B.mean(0), o.a.mean(0)
    H, C, b = o.H.mean(0), o.C.mean(0), o.b.mean(0)
    errors = []
    for penalty in (1e2, 1e3):
        solver = start_full_batch(solver_classes, well_conditioned_problem, "f2sa",
                                  step_size=1e-4, outer_ratio=1.0, penalty_initial=penalty,
                                  n_inner_steps=1)
        x = solver.lmbd.numpy()
        z = -np.linalg.solve(A, B @ x + a)
        y = -np.linalg.solve(H + penalty * A, C @ x + b + penalty * (B @ x + a))
        solver.theta, solver.y = torch.tensor(z), torch.tensor(y)
        solver.run_iterations(1)
        np.testing.assert_allclose(solver.theta.numpy(), z, **TOLERANCE)
        bracket = (x - solver.lmbd.numpy()) / 1e-4
        errors.append(np.linalg.norm(bracket - o.hypergradient(z, x)))
    assert errors[1] < 1e-2 * np.linalg.norm(o.hypergradient(z, x))
    assert 8 < errors[0] / errors[1] < 12, errors  # O(1 / lambda)
