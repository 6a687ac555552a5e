"""The work of a bilevel solver, counted in per-sample oracle evaluations, a
unit that does not depend on the machine or its load.

One unit is one of the following on one sample (i an inner, j an outer
sample), at one point:
- a gradient of G_i, ``inner_gradient`` (grad_theta G_i) or
  ``inner_gradients`` (its theta and lmbd parts, one reverse pass);
- a Hessian-vector product d2_theta G_i v, ``inner_hessian_vector`` (and
  every application of an ``inner_hessian_operator``);
- a cross-derivative product d2_(lmbd, theta) G_i v, ``inner_cross_vector``;
- a gradient of F_j, ``outer_gradients`` (grad_theta F_j and grad_lmbd F_j,
  one reverse pass);
- a value G_i or F_j, ``inner_loss`` / ``outer_loss`` (line searches).
``inner_oracles`` (a gradient, a Hessian-vector and a cross product) is 3.
A mini-batch counts each of its samples, the full batch all of them: the
oracle complexity of the papers (e.g. Dagréou et al., NeurIPS 2022, Sec. 3,
whose SOBA iteration costs a constant number of sample oracles), split by
product as the brief of the benchmark's work counter asks.

Solvers with a fixed number of oracles per iteration count in closed form
(their ``oracle_calls_per_iteration``); those whose work depends on a
tolerance (Newton-CG, conjugate gradient) count as they go, through a
:class:`CountingProblem`, which the tests also use to check the closed
forms against the calls the oracle path really makes.
"""
import inspect
import types

from .problems import FULL_BATCH, RowBatch

# Units per sample, and which samples (inner or outer) an oracle reads.
INNER_ORACLE_COSTS = {"inner_gradient": 1, "inner_gradients": 1, "inner_hessian_vector": 1,
                      "inner_cross_vector": 1, "inner_oracles": 3, "inner_loss": 1}
OUTER_ORACLE_COSTS = {"outer_gradients": 1, "outer_loss": 1}
# Position of the ``batch`` argument of each oracle (after self).
BATCH_POSITION = {"inner_gradient": 2, "inner_gradients": 2, "inner_loss": 2,
                  "outer_gradients": 2, "outer_loss": 2, "inner_hessian_vector": 3,
                  "inner_cross_vector": 3, "inner_oracles": 3,
                  "inner_hessian_operator": 2}


def batch_samples(batch, n_samples):
    """The number of samples in ``batch`` (a slice, an index tensor, a
    RowBatch or FULL_BATCH) out of ``n_samples``."""
    if isinstance(batch, slice):
        return len(range(n_samples)[batch])
    if isinstance(batch, RowBatch):
        # A block of b - 1 samples repeats a row with weight 0.
        return int((batch.weight > 0).sum())
    return len(batch)


def mean_block_size(n_samples, batch_size):
    """The average size of the mini-batches of a MinibatchSampler: n over its
    number of blocks (blocks differ by at most one sample, so a closed-form
    count with it is exact after every whole epoch, within one sample per
    batch in between)."""
    return n_samples / -(-n_samples // batch_size)


class CountingProblem:
    """A bilevel problem that counts the per-sample oracle evaluations made
    through it, in ``oracle_calls``. Every other method of the problem runs
    bound to this view, so that the oracles it calls (``solve_linear_system``
    calls ``inner_hessian_operator``) are counted too; an oracle's own
    internal calls (``inner_oracles`` computing a gradient) are not counted
    twice."""

    def __init__(self, problem):
        self._problem = problem
        self.oracle_calls = 0

    def _count(self, name, n_samples, args, kwargs):
        position = BATCH_POSITION[name]
        batch = kwargs.get("batch", args[position] if len(args) > position else FULL_BATCH)
        return batch_samples(batch, n_samples)

    def __getattr__(self, name):
        if name == "_problem":  # not set yet (copy.copy)
            raise AttributeError(name)
        problem = self._problem
        attribute = getattr(problem, name)
        costs = {**INNER_ORACLE_COSTS, **OUTER_ORACLE_COSTS}
        if name in costs:
            n_samples = (problem.n_inner_samples if name in INNER_ORACLE_COSTS
                         else problem.n_outer_samples)

            def counted(*args, **kwargs):
                self.oracle_calls += costs[name] * self._count(name, n_samples, args, kwargs)
                return attribute(*args, **kwargs)
            return counted
        if name == "inner_hessian_operator":
            def operator(*args, **kwargs):
                samples = self._count(name, problem.n_inner_samples, args, kwargs)
                hessian_vector = attribute(*args, **kwargs)

                def counted(v):
                    self.oracle_calls += samples
                    return hessian_vector(v)
                return counted
            return operator
        static = inspect.getattr_static(type(problem), name, None)
        if isinstance(static, types.FunctionType):
            return types.MethodType(static, self)
        return attribute
