"""Fused SOBA and SABA iterations for :class:`LogisticRegressionProblem`.

The oracle path (``problem.inner_oracles`` and friends, one call per oracle
and per iteration) costs about 20 small tensor operations per iteration,
each a few microseconds of framework overhead around well under a
microsecond of arithmetic at batch 64 and 22 features. Here a chunk of K
iterations is one function of plain tensors, written so that it can be
handed to ``torch.compile`` whole:

- the labels are folded into the features once, z_i = y_i x_i, so that the
  margins are Z theta and, y_i^2 being 1, the Hessian's x x^T is z z^T;
- per mini-batch, the three inner oracles come from two reductions over the
  batch's rows, Z theta and Z v, then one weighted sum of the rows for the
  gradient and one for the Hessian-vector product; the cross product
  d2_(lmbd,theta) G v = exp(lmbd) theta v needs no data;
- the mini-batches of the chunk are block numbers drawn beforehand
  (:meth:`MinibatchSampler.sample_block_ids`), turned into rows inside the
  iteration through per-block tables of row indices and weights: blocks have
  batch_size or batch_size - 1 rows, so each table row is padded with a
  repeated row of weight 0, and every batch has the same shape;
- step sizes are computed inside the chunk from the iteration counter, a
  tensor carried in the state, so a decreasing schedule triggers no
  recompilation and no per-chunk Python work.

One iteration is a function of its carry (:func:`soba_iteration`,
:func:`saba_iteration`); a chunk runs it in a Python loop
(:func:`python_loop_chunk`: eager torch, and CUDA graphs, which record the
unrolled loop) or in ``torch.while_loop`` (:func:`while_loop_chunk`: compiled
on the CPU, the loop is C++ around the iteration's kernels, which compile
once whatever the chunk's length, so a chunk can last a whole evaluation
interval).

The iterates are those of the oracle path with the same mini-batches (the
tests check it to float64 precision); only the order of floating-point
operations differs.
"""
from functools import partial
from typing import NamedTuple

import torch
from torch._higher_order_ops.while_loop import while_loop

# Iterations per turn of the compiled while loop. Measured with
# benchmarks/bilevel_speed.py (us per iteration / compile s, SOBA then SABA):
# 1: 9.0 / 16, 30.6 / 5; 2: 9.4 / 17, 16.0 / 7; 4: 9.0 / 17, 12.7 / 12;
# 8: 9.7 / 30, 16.2 / 39. SABA gains most, presumably because its SAGA
# tables, loop-carried, are copied once per turn instead of every iteration.
WHILE_LOOP_UNROLL = 4


class BlockTable(NamedTuple):
    """A sampler's blocks as padded row indices (n_blocks, rows), per-row
    weights 1 / block size (0 on padding) and block shares of the samples
    (n_blocks,), SAGA's averaging weights."""
    index: torch.Tensor
    weight: torch.Tensor
    share: torch.Tensor


def block_table(sampler, device, dtype):
    rows = max(batch.stop - batch.start for batch in sampler.batches)
    offsets = torch.arange(rows)
    starts = torch.tensor([batch.start for batch in sampler.batches])
    sizes = torch.tensor([batch.stop - batch.start for batch in sampler.batches])
    index = torch.minimum(starts[:, None] + offsets, (starts + sizes - 1)[:, None])
    # In the solver's dtype from the start: 1 / 15 rounded to float32 and then
    # widened would put float32 errors into a float64 run.
    weight = (offsets < sizes[:, None]).to(dtype) / sizes[:, None].to(dtype)
    return BlockTable(index.to(device), weight.to(device),
                      torch.tensor(sampler.weights, dtype=dtype, device=device))


class LogisticData(NamedTuple):
    """Signed features Z = y X of the inner and outer samples, and the block
    tables of the two samplers."""
    inner_features: torch.Tensor
    outer_features: torch.Tensor
    inner_blocks: BlockTable
    outer_blocks: BlockTable


def logistic_data(problem, inner_sampler, outer_sampler):
    device, dtype = problem.device, problem.dtype
    return LogisticData(problem.y_inner[:, None] * problem.X_inner,
                        problem.y_outer[:, None] * problem.X_outer,
                        block_table(inner_sampler, device, dtype),
                        block_table(outer_sampler, device, dtype))


def _block_rows(blocks, block):
    """(row indices, row weights) of the block numbered by the 1-element
    index tensor ``block`` (an index tensor, not a number, so that a compiled
    loop does not read it back to the host)."""
    return (torch.index_select(blocks.index, 0, block)[0],
            torch.index_select(blocks.weight, 0, block)[0])


def inner_oracles(data, theta, lmbd, v, block):
    """(grad_theta G, d2_theta G v, d2_(lmbd,theta) G v) on the inner block
    ``block`` (rows weighted 1 / batch size, padding 0)."""
    rows, weight = _block_rows(data.inner_blocks, block)
    Z = data.inner_features[rows]
    # sigmoid(-z^T theta) is minus the derivative of log(1 + exp(-m)) in the
    # margin m = z^T theta; its derivative s (1 - s) is the curvature.
    s = torch.sigmoid(-(Z * theta).sum(1))
    regularization = torch.exp(lmbd)
    gradient = (Z * (-weight * s)[:, None]).sum(0) + regularization * theta
    hessian_v = ((Z * (weight * s * (1 - s) * (Z * v).sum(1))[:, None]).sum(0)
                 + regularization * v)
    return gradient, hessian_v, regularization * theta * v


def outer_gradient(data, theta, block):
    """grad_theta F on the outer block ``block`` (grad_lmbd F is 0)."""
    rows, weight = _block_rows(data.outer_blocks, block)
    Z = data.outer_features[rows]
    return (Z * (-weight * torch.sigmoid(-(Z * theta).sum(1)))[:, None]).sum(0)


class State(NamedTuple):
    """SOBA's and SABA's iterates and the iteration counter t (a 0-d
    tensor)."""
    theta: torch.Tensor
    v: torch.Tensor
    lmbd: torch.Tensor
    iteration: torch.Tensor


class Steps(NamedTuple):
    """rho_t = inner / (t + 1)^exponent, gamma_t = outer / (t + 1)^exponent
    (0-d tensors, so that other values reuse a compiled chunk)."""
    inner: torch.Tensor
    outer: torch.Tensor
    exponent: torch.Tensor


def _step_sizes(steps, iteration):
    decay = (iteration + 1.0) ** -steps.exponent
    return steps.inner * decay, steps.outer * decay


def soba_iteration(data, steps, state, inner_block, outer_block):
    """One iteration of SOBA (Dagréou et al. 2022, Algorithm 1, directions of
    Eq. (5)-(7)); returns the new :class:`State`."""
    theta, v, lmbd, iteration = state
    rho, gamma = _step_sizes(steps, iteration)
    gradient, hessian_v, cross_v = inner_oracles(data, theta, lmbd, v, inner_block)
    grad_theta_outer = outer_gradient(data, theta, outer_block)
    return State(theta - rho * gradient, v - rho * (hessian_v + grad_theta_outer),
                 lmbd - gamma * cross_v, iteration + 1)


class SagaTables(NamedTuple):
    """SABA's memory: one table per oracle (a row per block) and the tables'
    share-weighted averages. grad_lmbd F is 0 on this problem, so its table
    would stay 0 and is left out."""
    gradient: torch.Tensor
    hessian_v: torch.Tensor
    cross_v: torch.Tensor
    outer_gradient: torch.Tensor
    averages: torch.Tensor  # (4, dim): the same four oracles, in this order


def saga_tables(data, dim, dtype):
    n_inner, n_outer = len(data.inner_blocks.share), len(data.outer_blocks.share)
    device = data.inner_features.device

    def zeros(*shape):
        return torch.zeros(*shape, dim, device=device, dtype=dtype)
    return SagaTables(zeros(n_inner), zeros(n_inner), zeros(n_inner), zeros(n_outer),
                      zeros(4))


def _saga_step(table, block, share, average, value):
    """SAGA's direction value - table[i] + average (Defazio et al. 2014) for
    block i, as :class:`SagaMemory.direction`, without writing to its inputs:
    returns (direction, new average, new table)."""
    difference = value - torch.index_select(table, 0, block)[0]
    return (difference + average, average + share * difference,
            table.index_copy(0, block, value[None]))


def saba_iteration(data, steps, carry, inner_block, outer_block):
    """One iteration of SABA (Dagréou et al. 2022, Algorithm 2): SOBA's
    directions replaced by their SAGA estimates. ``carry`` is ``(State,
    SagaTables)``; returns the new one."""
    (theta, v, lmbd, iteration), tables = carry
    rho, gamma = _step_sizes(steps, iteration)
    gradient, hessian_v, cross_v = inner_oracles(data, theta, lmbd, v, inner_block)
    grad_theta_outer = outer_gradient(data, theta, outer_block)
    inner_share = torch.index_select(data.inner_blocks.share, 0, inner_block)[0]
    outer_share = torch.index_select(data.outer_blocks.share, 0, outer_block)[0]
    average_gradient, average_hessian, average_cross, average_outer = tables.averages
    gradient, average_gradient, gradient_table = _saga_step(
        tables.gradient, inner_block, inner_share, average_gradient, gradient)
    hessian_v, average_hessian, hessian_table = _saga_step(
        tables.hessian_v, inner_block, inner_share, average_hessian, hessian_v)
    cross_v, average_cross, cross_table = _saga_step(
        tables.cross_v, inner_block, inner_share, average_cross, cross_v)
    grad_theta_outer, average_outer, outer_table = _saga_step(
        tables.outer_gradient, outer_block, outer_share, average_outer, grad_theta_outer)
    state = State(theta - rho * gradient, v - rho * (hessian_v + grad_theta_outer),
                  lmbd - gamma * cross_v, iteration + 1)
    averages = torch.stack((average_gradient, average_hessian, average_cross, average_outer))
    return state, SagaTables(gradient_table, hessian_table, cross_table, outer_table, averages)


def python_loop_chunk(iteration, data, carry, inner_ids, outer_ids, steps):
    """len(inner_ids) iterations of ``iteration`` from ``carry``, in a
    Python loop (unrolled when compiled)."""
    for k in range(inner_ids.shape[0]):
        carry = iteration(data, steps, carry, inner_ids[k:k + 1], outer_ids[k:k + 1])
    return carry


def while_loop_chunk(iteration, data, carry, inner_ids, outer_ids, steps):
    """The same iterations in ``torch.while_loop``, whose body compiles once
    whatever the number of iterations. The body runs ``unroll`` iterations
    in a row (the largest divisor of the chunk's length up to
    ``WHILE_LOOP_UNROLL``): the loop's own cost per turn, bookkeeping of its
    tensors rather than arithmetic, is then shared by several iterations."""
    n_iterations = inner_ids.shape[0]
    unroll = max(u for u in range(1, WHILE_LOOP_UNROLL + 1) if n_iterations % u == 0)

    def condition(k, carry):
        return k < n_iterations

    def body(k, carry):
        for offset in range(unroll):
            k_index = (k + offset).reshape(1)
            carry = iteration(data, steps, carry, torch.index_select(inner_ids, 0, k_index),
                              torch.index_select(outer_ids, 0, k_index))
        return k + unroll, carry
    start = torch.zeros((), dtype=torch.int64, device=inner_ids.device)
    return while_loop(condition, body, (start, carry))[1]


def chunk_function(iteration, device, compiled):
    """The chunk runner of ``iteration`` for ``device``: eager (a Python
    loop), or through ``torch.compile``: on the CPU the ``while_loop`` with
    inductor's C++ wrapper, so that no Python runs between iterations; on
    CUDA the unrolled loop replayed as one CUDA graph (a while loop would
    read its condition back to the host at every iteration)."""
    if not compiled:
        return partial(python_loop_chunk, iteration)
    if torch.device(device).type == "cuda":
        return torch.compile(partial(python_loop_chunk, iteration), fullgraph=True,
                             dynamic=False, options={"triton.cudagraphs": True})
    return torch.compile(partial(while_loop_chunk, iteration), fullgraph=True,
                         dynamic=False, options={"cpp_wrapper": True})
