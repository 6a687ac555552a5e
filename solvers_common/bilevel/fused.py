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
  function through per-block tables of row indices and weights: blocks have
  batch_size or batch_size - 1 rows, so each table row is padded with a
  repeated row of weight 0, and every batch has the same shape;
- step sizes are computed inside the chunk from the iteration counter, a
  tensor carried in the state, so a decreasing schedule triggers no
  recompilation and no per-chunk Python work.

The iterates are those of the oracle path with the same mini-batches (the
tests check it to float64 precision); only the order of floating-point
operations differs. Compiled, the chunk becomes a few C++ loops on the CPU,
and on CUDA one CUDA graph (see :func:`compile_chunk`).
"""
from typing import NamedTuple

import torch


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


def _chunk_rows(blocks, block_ids):
    """(row indices (K, rows), row weights (K, rows)) of the chunk's blocks,
    gathered once per chunk with a 1-d index (a 0-d tensor index would be
    read back to Python by the compiler)."""
    return blocks.index[block_ids], blocks.weight[block_ids]


def inner_oracles(data, theta, lmbd, v, rows, weight):
    """(grad_theta G, d2_theta G v, d2_(lmbd,theta) G v) on the inner samples
    ``rows`` with weights ``weight`` (1 / batch size, 0 on padding)."""
    Z = data.inner_features[rows]
    # sigmoid(-z^T theta) is minus the derivative of log(1 + exp(-m)) in the
    # margin m = z^T theta; its derivative s (1 - s) is the curvature.
    s = torch.sigmoid(-(Z * theta).sum(1))
    regularization = torch.exp(lmbd)
    gradient = (Z * (-weight * s)[:, None]).sum(0) + regularization * theta
    hessian_v = ((Z * (weight * s * (1 - s) * (Z * v).sum(1))[:, None]).sum(0)
                 + regularization * v)
    return gradient, hessian_v, regularization * theta * v


def outer_gradient(data, theta, rows, weight):
    """grad_theta F on the outer samples ``rows`` (grad_lmbd F is 0)."""
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
    """rho_t = inner / (t + 1)^exponent, gamma_t = outer / (t + 1)^exponent."""
    inner: float
    outer: float
    exponent: float


def _step_sizes(steps, iteration):
    decay = (iteration + 1.0) ** -steps.exponent
    return steps.inner * decay, steps.outer * decay


def soba_chunk(data, state, inner_ids, outer_ids, steps):
    """len(inner_ids) iterations of SOBA (Dagréou et al. 2022, Algorithm 1)
    from ``state``; returns the new :class:`State`."""
    theta, v, lmbd, iteration = state
    inner_rows, inner_weights = _chunk_rows(data.inner_blocks, inner_ids)
    outer_rows, outer_weights = _chunk_rows(data.outer_blocks, outer_ids)
    for k in range(inner_ids.shape[0]):
        rho, gamma = _step_sizes(steps, iteration)
        gradient, hessian_v, cross_v = inner_oracles(data, theta, lmbd, v, inner_rows[k],
                                                     inner_weights[k])
        grad_theta_outer = outer_gradient(data, theta, outer_rows[k], outer_weights[k])
        theta, v, lmbd = (theta - rho * gradient, v - rho * (hessian_v + grad_theta_outer),
                          lmbd - gamma * cross_v)
        iteration = iteration + 1
    return State(theta, v, lmbd, iteration)


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


def _saga_step(rows, ids, k, share, average, value):
    """SAGA's direction value - table[i] + average (Defazio et al. 2014) for
    the k-th block of the chunk, as :class:`SagaMemory.direction`, on the
    chunk's copy ``rows`` of its table rows (K, dim): returns (direction,
    new average, new rows). The new value goes to every row of the chunk
    that holds the same block (a block can come back within a chunk across
    an epoch boundary), so later reads see it and all copies of a block end
    equal."""
    difference = value - rows[k]
    rows = torch.where((ids == ids[k])[:, None], value, rows)
    return difference + average, average + share * difference, rows


def saba_chunk(data, tables, state, inner_ids, outer_ids, steps):
    """len(inner_ids) iterations of SABA (Dagréou et al. 2022, Algorithm 2)
    from ``state``; returns the new :class:`State` and the chunk's table rows
    and averages, ``(gradient, hessian_v, cross_v, outer_gradient)`` rows and
    (4, dim) averages, for :func:`store_saga_rows`. The function does not
    write to its inputs (what a CUDA graph replays best)."""
    theta, v, lmbd, iteration = state
    inner_rows, inner_weights = _chunk_rows(data.inner_blocks, inner_ids)
    outer_rows, outer_weights = _chunk_rows(data.outer_blocks, outer_ids)
    inner_shares = data.inner_blocks.share[inner_ids]
    outer_shares = data.outer_blocks.share[outer_ids]
    gradient_rows, hessian_rows = tables.gradient[inner_ids], tables.hessian_v[inner_ids]
    cross_rows, outer_rows_table = tables.cross_v[inner_ids], tables.outer_gradient[outer_ids]
    average_gradient, average_hessian, average_cross, average_outer = tables.averages
    for k in range(inner_ids.shape[0]):
        rho, gamma = _step_sizes(steps, iteration)
        gradient, hessian_v, cross_v = inner_oracles(data, theta, lmbd, v, inner_rows[k],
                                                     inner_weights[k])
        grad_theta_outer = outer_gradient(data, theta, outer_rows[k], outer_weights[k])
        share = inner_shares[k]
        gradient, average_gradient, gradient_rows = _saga_step(
            gradient_rows, inner_ids, k, share, average_gradient, gradient)
        hessian_v, average_hessian, hessian_rows = _saga_step(
            hessian_rows, inner_ids, k, share, average_hessian, hessian_v)
        cross_v, average_cross, cross_rows = _saga_step(
            cross_rows, inner_ids, k, share, average_cross, cross_v)
        grad_theta_outer, average_outer, outer_rows_table = _saga_step(
            outer_rows_table, outer_ids, k, outer_shares[k], average_outer, grad_theta_outer)
        theta, v, lmbd = (theta - rho * gradient, v - rho * (hessian_v + grad_theta_outer),
                          lmbd - gamma * cross_v)
        iteration = iteration + 1
    averages = torch.stack((average_gradient, average_hessian, average_cross, average_outer))
    return (State(theta, v, lmbd, iteration),
            (gradient_rows, hessian_rows, cross_rows, outer_rows_table, averages))


def store_saga_rows(tables, inner_ids, outer_ids, rows):
    """Write a chunk's rows and averages (from :func:`saba_chunk`) back to
    the tables; copies of one block hold the same value, so the order of
    the writes does not matter."""
    gradient_rows, hessian_rows, cross_rows, outer_rows, averages = rows
    tables.gradient.index_copy_(0, inner_ids, gradient_rows)
    tables.hessian_v.index_copy_(0, inner_ids, hessian_rows)
    tables.cross_v.index_copy_(0, inner_ids, cross_rows)
    tables.outer_gradient.index_copy_(0, outer_ids, outer_rows)
    tables.averages.copy_(averages)


def compile_chunk(function, device):
    """``function`` through ``torch.compile`` for a fixed chunk length (the
    loop over the chunk unrolls into one graph). On the CPU, inductor's C++
    wrapper calls the generated kernels without Python in between; on CUDA,
    the chunk is replayed as one CUDA graph."""
    if torch.device(device).type == "cuda":
        return torch.compile(function, fullgraph=True, dynamic=False,
                             options={"triton.cudagraphs": True})
    return torch.compile(function, fullgraph=True, dynamic=False,
                         options={"cpp_wrapper": True})
