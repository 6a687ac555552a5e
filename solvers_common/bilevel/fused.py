"""Compiled iterations of the single-loop bilevel solvers, written on a
problem's oracles.

The oracle path (one Python call per oracle and per iteration) costs tens of
small tensor operations per iteration, each a few microseconds of framework
overhead around well under a microsecond of arithmetic at batch 64. Here an
iteration is a pure function of its carry (the solver's state, tensors
only) and of the block numbers of its mini-batches, written on the problem's
closed-form oracles, so that a chunk of iterations can be handed to
``torch.compile`` whole:

- a mini-batch is a :class:`~.problems.RowBatch`, looked up inside the
  iteration from a table of each sampler's blocks (row indices, and weights
  1 / block size): blocks have batch_size or batch_size - 1 rows, so each
  table row is padded with a repeated row of weight 0 and every batch has
  the same shape; the block numbers of a chunk are drawn beforehand
  (:meth:`MinibatchSampler.sample_block_ids`), the same sequence as the
  oracle path's; so are SUSTAIN's and TTSA's random numbers of
  Hessian-vector products (:func:`draw_truncated_block_ids`);
- step sizes, momentum weights and the iteration counter are 0-d tensors,
  so that a grid of step sizes or a decreasing schedule triggers no
  recompilation.

A chunk runs the iteration in a Python loop (:func:`python_loop_chunk`:
eager torch, and CUDA graphs, which record the unrolled loop) or in
``torch.while_loop`` (:func:`while_loop_chunk`: compiled on the CPU, the loop
is C++ around the iteration's kernels, which compile once whatever the
chunk's length, so a chunk can last a whole evaluation interval).

The iterates are those of the solvers' oracle paths with the same
mini-batches (the tests check it); only the order of floating-point
operations differs. A problem is served when its oracles take a RowBatch
(``problem.row_batches``: the quadratic, logistic-regression and
data-cleaning problems).
"""
from functools import partial
from typing import NamedTuple

import torch
from torch._higher_order_ops.while_loop import while_loop

from .problems import FULL_BATCH, RowBatch
from .stochastic_routines import HypergradientBatches, neumann_hypergradient

# Iterations per turn of the compiled while loop (benchmarks/bilevel_speed.py
# --unroll): more share the loop's own cost per turn, but the compilation
# grows with them. Measured on datacleaning (digits), process CPU time per
# iteration / compile CPU time, SOBA then SABA: unroll 1: 64 us / 15 s,
# 72 us / 8 s; unroll 4: 63 us / 28 s, 67 us / 29 s (2026-11-30, load 11 to
# 13 on 2 cores).
WHILE_LOOP_UNROLL = 1


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


class Data(NamedTuple):
    """What every iteration reads: the problem and the block tables of the
    inner and outer samplers."""
    problem: object
    inner: BlockTable
    outer: BlockTable


def make_data(problem, inner_sampler, outer_sampler):
    return Data(problem, block_table(inner_sampler, problem.device, problem.dtype),
                block_table(outer_sampler, problem.device, problem.dtype))


def block_batch(table, ids, position):
    """The RowBatch of block ``ids[position]`` (an index lookup, not a
    number, so that a compiled loop does not read it back to the host);
    ``position`` a number or a 0-d integer tensor."""
    if isinstance(position, torch.Tensor):
        block = torch.index_select(ids, 0, position.reshape(1))
    else:
        block = ids[position:position + 1]
    return RowBatch(torch.index_select(table.index, 0, block)[0],
                    torch.index_select(table.weight, 0, block)[0])


def decayed(step, exponent, iteration):
    """step / (t + 1)^exponent at the 0-d integer iteration counter t."""
    return step * (iteration + 1).to(step.dtype) ** -exponent


# -- SOBA and SABA (Dagréou et al. 2022) ---------------------------------------
def soba_directions(problem, theta, v, lmbd, inner, outer):
    """SOBA's (D_theta, D_v, D_lmbd) at one point on the given batches
    (Dagréou et al. 2022, Eq. (5)-(7)); SRBA's too."""
    gradient, hessian_v, cross_v = problem.inner_oracles(theta, lmbd, v, inner)
    grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer)
    return gradient, hessian_v + grad_theta_outer, cross_v + grad_lmbd_outer


def soba_iteration(data, hyper, carry, inner_ids, outer_ids):
    """One iteration of SOBA (Dagréou et al. 2022, Algorithm 1): carry
    (theta, v, lmbd, t), steps rho_t = inner_step / (t+1)^exponent, gamma_t
    = outer_step / (t+1)^exponent."""
    theta, v, lmbd, t = carry
    rho = decayed(hyper["inner_step"], hyper["exponent"], t)
    gamma = decayed(hyper["outer_step"], hyper["exponent"], t)
    d_theta, d_v, d_lmbd = soba_directions(data.problem, theta, v, lmbd,
                                           block_batch(data.inner, inner_ids, 0),
                                           block_batch(data.outer, outer_ids, 0))
    return theta - rho * d_theta, v - rho * d_v, lmbd - gamma * d_lmbd, t + 1


def saga_step(memory, block, share, value):
    """SAGA's direction value - table[i] + average (Defazio et al. 2014) for
    block i, as :class:`SagaMemory.direction`, without writing to its inputs:
    returns (direction, (new table, new average))."""
    table, average = memory
    difference = value - torch.index_select(table, 0, block)[0]
    return (difference + average,
            (table.index_copy(0, block, value[None]), average + share * difference))


def saga_memories(theta, lmbd, n_inner_blocks, n_outer_blocks):
    """SABA's zero memory, a (table, average) pair per oracle: grad_theta G,
    d2_theta G v, d2_(lmbd,theta) G v (inner blocks), grad_theta F,
    grad_lmbd F (outer blocks)."""
    def zeros(n_blocks, like):
        return torch.zeros(n_blocks, *like.shape, dtype=like.dtype, device=like.device)

    return tuple((zeros(n, like), torch.zeros_like(like)) for n, like in (
        (n_inner_blocks, theta), (n_inner_blocks, theta), (n_inner_blocks, lmbd),
        (n_outer_blocks, theta), (n_outer_blocks, lmbd)))


def saba_iteration(data, hyper, carry, inner_ids, outer_ids):
    """One iteration of SABA (Dagréou et al. 2022, Algorithm 2): SOBA's
    five oracles replaced by their SAGA estimates, constant steps. Carry
    ((theta, v, lmbd), memories)."""
    (theta, v, lmbd), memories = carry
    problem = data.problem
    inner_block, outer_block = inner_ids[0:1], outer_ids[0:1]
    gradient, hessian_v, cross_v = problem.inner_oracles(
        theta, lmbd, v, block_batch(data.inner, inner_ids, 0))
    grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(
        theta, lmbd, block_batch(data.outer, outer_ids, 0))
    inner_share = torch.index_select(data.inner.share, 0, inner_block)[0]
    outer_share = torch.index_select(data.outer.share, 0, outer_block)[0]
    directions, new_memories = [], []
    for memory, block, share, value in zip(
            memories, [inner_block] * 3 + [outer_block] * 2, [inner_share] * 3
            + [outer_share] * 2, (gradient, hessian_v, cross_v, grad_theta_outer,
                                  grad_lmbd_outer)):
        direction, memory = saga_step(memory, block, share, value)
        directions.append(direction)
        new_memories.append(memory)
    gradient, hessian_v, cross_v, grad_theta_outer, grad_lmbd_outer = directions
    rho, gamma = hyper["inner_step"], hyper["outer_step"]
    state = (theta - rho * gradient, v - rho * (hessian_v + grad_theta_outer),
             lmbd - gamma * (cross_v + grad_lmbd_outer))
    return state, tuple(new_memories)


# -- SRBA (Dagréou et al. 2024) --------------------------------------------------
def srba_iteration(data, hyper, carry, inner_ids, outer_ids):
    """One iteration of SRBA (Dagréou et al. 2024, Algorithm 1): SOBA's
    directions by SARAH, recomputed on the full data when t % period == 0
    (``torch.cond``; the block numbers of those iterations are unused).
    Carry (theta, v, lmbd, previous point, directions, t)."""
    theta, v, lmbd, previous, directions, t = carry
    problem = data.problem
    inner = block_batch(data.inner, inner_ids, 0)
    outer = block_batch(data.outer, outer_ids, 0)

    def full_pass(theta, v, lmbd, previous, directions):
        return soba_directions(problem, theta, v, lmbd, FULL_BATCH, FULL_BATCH)

    def recursive(theta, v, lmbd, previous, directions):
        values = soba_directions(problem, theta, v, lmbd, inner, outer)
        previous_values = soba_directions(problem, *previous, inner, outer)
        return tuple(value + (direction - previous_value) for value, direction, previous_value
                     in zip(values, directions, previous_values))

    d_theta, d_v, d_lmbd = torch.cond(t % hyper["period"] == 0, full_pass, recursive,
                                      (theta, v, lmbd, previous, directions))
    rho, gamma = hyper["inner_step"], hyper["outer_step"]
    # (copies: a while loop's carry may not hold one tensor twice)
    return (theta - rho * d_theta, v - rho * d_v, lmbd - gamma * d_lmbd,
            (theta.clone(), v.clone(), lmbd.clone()), (d_theta, d_v, d_lmbd), t + 1)


# -- FSLA (Li, Gu and Huang 2022) ----------------------------------------------------
def storm(value, direction, previous_value, weight, t):
    """STORM's recursive momentum value + (1 - a) (d - previous value)
    (Cutkosky and Orabona 2019), the value itself at t = 0, as
    :meth:`RecursiveEstimator.update` on its first call."""
    weight = torch.where(t == 0, torch.ones_like(weight), weight)
    return value + (1 - weight) * (direction - previous_value)


def fsla_iteration(data, hyper, carry, inner_ids, outer_ids):
    """One iteration of FSLA (Li, Gu and Huang 2022, Algorithm 1), three
    inner and two outer batches. Carry (theta, v, lmbd, d, previous lmbd,
    t): the previous hypergradient point is (theta, previous lmbd, v)."""
    theta, v, lmbd, d, previous_lmbd, t = carry
    problem = data.problem
    inner = [block_batch(data.inner, inner_ids, position) for position in range(3)]
    outer = [block_batch(data.outer, outer_ids, position) for position in range(2)]
    rho = decayed(hyper["inner_step"], 0.5, t)

    def hypergradient(theta, lmbd, v):
        _, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer[1])
        return grad_lmbd_outer - problem.inner_cross_vector(theta, lmbd, v, inner[2])
    previous_hypergradient = hypergradient(theta, previous_lmbd, v)
    theta = theta - rho * problem.inner_gradient(theta, lmbd, inner[0])
    grad_theta_outer, _ = problem.outer_gradients(theta, lmbd, outer[0])
    v = v - rho * (problem.inner_hessian_vector(theta, lmbd, v, inner[1]) - grad_theta_outer)
    d = storm(hypergradient(theta, lmbd, v), d, previous_hypergradient,
              decayed(hyper["momentum"], 0.5, t), t)
    # (a copy: a while loop's carry may not hold one tensor twice)
    return theta, v, lmbd - decayed(hyper["outer_step"], 0.5, t) * d, d, lmbd.clone(), t + 1


# -- MRBO (Yang, Ji and Liang 2021) and SUSTAIN (Khanduri et al. 2021) -------------
def double_momentum_iteration(data, hyper, carry, inner_batch, hypergradients):
    """STORM estimates u of grad_theta G (on ``inner_batch``) and w of the
    hypergradient, at the current and the previous point, and the step
    (benchmark_utils/solver_families.py's DoubleMomentumSolver):
    ``hypergradients(points)`` gives the hypergradient estimate at each
    (theta, lmbd) of ``points`` on the same batches. Carry (theta, lmbd, u,
    w, previous point, t)."""
    theta, lmbd, u, w, previous, t = carry
    problem = data.problem
    weight = decayed(hyper["momentum"], 2 / 3, t)
    u = storm(problem.inner_gradient(theta, lmbd, inner_batch), u,
              problem.inner_gradient(*previous, inner_batch), weight, t)
    current_value, previous_value = hypergradients([(theta, lmbd), previous])
    w = storm(current_value, w, previous_value, weight, t)
    # (copies: a while loop's carry may not hold one tensor twice)
    return (theta - decayed(hyper["inner_step"], 1 / 3, t) * u,
            lmbd - decayed(hyper["outer_step"], 1 / 3, t) * w, u, w,
            (theta.clone(), lmbd.clone()), t + 1)


def mrbo_iteration(data, hyper, carry, inner_ids, outer_ids):
    """One iteration of MRBO (Yang, Ji and Liang 2021, Algorithm 1): STORM
    estimates u of grad_theta G and w of the Neumann hypergradient, on the
    inner ids (inner batch, cross batch, Q Hessian batches) and the outer
    batch. Carry (theta, lmbd, u, w, previous point, t)."""
    inner = [block_batch(data.inner, inner_ids, position)
             for position in range(inner_ids.shape[0])]
    batches = HypergradientBatches(block_batch(data.outer, outer_ids, 0), inner[1], inner[2:])

    def hypergradients(points):
        return [neumann_hypergradient(data.problem, theta, lmbd, batches, hyper["inner_step"])
                for theta, lmbd in points]
    return double_momentum_iteration(data, hyper, carry, inner[0], hypergradients)


def random_truncation_products(data, points, vectors, inner_ids, length, step):
    """prod_{q < length} (I - step d2_theta G_q(theta, lmbd)) b for each
    (theta, lmbd) of ``points`` and b of ``vectors``, the Hessian on the
    block ``inner_ids[2 + q]``, for a 0-d integer ``length`` drawn beforehand
    (Ghadimi and Wang 2018, Algorithm 3, as
    :func:`~.stochastic_routines.neumann_random_truncation`).

    Every one of the ``len(inner_ids) - 2`` slots runs and the products
    past ``length`` are discarded: twice the oracle path's Hessian-vector
    products on average, but no data-dependent loop (CUDA graphs have none;
    on the CPU a while loop nested in the compiled chunk's gave SUSTAIN
    iterates off by 1e-3 from the eager ones with torch 2.14, TTSA's
    right)."""
    problem = data.problem
    for q in range(inner_ids.shape[0] - 2):
        batch = block_batch(data.inner, inner_ids, 2 + q)
        vectors = [torch.where(q < length,
                               v - step * problem.inner_hessian_vector(theta, lmbd, v, batch), v)
                   for (theta, lmbd), v in zip(points, vectors)]
    return vectors


def truncated_hypergradients(data, hyper, points, inner_ids, outer_ids, length):
    """grad_lmbd F_j - d2_(lmbd,theta) G_i' v with Ghadimi and Wang's v =
    n_steps eta prod_{q < length} (I - eta d2_theta G_q) grad_theta F_j (eta
    the inner step) at each (theta, lmbd) of ``points``: outer batch
    ``outer_ids[0]``, cross batch ``inner_ids[1]``, Hessian batches from
    ``inner_ids[2]`` on (SUSTAIN's and TTSA's hypergradient,
    :func:`~.stochastic_routines.neumann_hypergradient` with
    ``truncation_scale``)."""
    problem = data.problem
    outer, cross = block_batch(data.outer, outer_ids, 0), block_batch(data.inner, inner_ids, 1)
    gradients = [problem.outer_gradients(theta, lmbd, outer) for theta, lmbd in points]
    vectors = random_truncation_products(data, points, [grad_theta for grad_theta, _ in gradients],
                                         inner_ids, length, hyper["inner_step"])
    return [grad_lmbd - problem.inner_cross_vector(theta, lmbd, hyper["truncation_scale"] * v,
                                                   cross)
            for (theta, lmbd), (_, grad_lmbd), v in zip(points, gradients, vectors)]


def sustain_iteration(data, hyper, carry, inner_ids, outer_ids, lengths):
    """One iteration of SUSTAIN (Khanduri et al. 2021, Algorithm 1): as
    MRBO's, with Ghadimi and Wang's hypergradient of ``lengths[0]``
    Hessian-vector products, the same at both points. Inner ids: inner
    batch, cross batch, Hessian batches (the oracle path's order)."""
    def hypergradients(points):
        return truncated_hypergradients(data, hyper, points, inner_ids, outer_ids, lengths[0])
    return double_momentum_iteration(data, hyper, carry,
                                     block_batch(data.inner, inner_ids, 0), hypergradients)


# -- TTSA (Hong, Wai, Wang and Yang 2023) ---------------------------------------------
def ttsa_iteration(data, hyper, carry, inner_ids, outer_ids, lengths):
    """One iteration of TTSA (Hong et al. 2023, Algorithm 1): the inner SGD
    step first, then the outer step with Ghadimi and Wang's hypergradient at
    (theta_{k+1}, lmbd_k), beta_k = inner_step / (k+1)^(2/5), alpha_k =
    outer_step / (k+1)^(3/5). Inner ids: inner batch, cross batch, Hessian
    batches (the oracle path draws the cross batch last; the solver moves
    it). Carry (theta, lmbd, t)."""
    theta, lmbd, t = carry
    problem = data.problem
    theta = theta - decayed(hyper["inner_step"], 2 / 5, t) * problem.inner_gradient(
        theta, lmbd, block_batch(data.inner, inner_ids, 0))
    [hypergradient] = truncated_hypergradients(data, hyper, [(theta, lmbd)], inner_ids,
                                               outer_ids, lengths[0])
    return theta, lmbd - decayed(hyper["outer_step"], 3 / 5, t) * hypergradient, t + 1


def draw_truncated_block_ids(inner_sampler, outer_sampler, generator, n_steps, n_iterations,
                             cross_last=False):
    """The draws of ``n_iterations`` iterations of SUSTAIN or TTSA, in the
    oracle path's order: (inner block numbers (n_iterations, n_steps + 1):
    inner batch, cross batch, then the Hessian batches; outer block numbers
    (n_iterations, 1); numbers of Hessian-vector products (n_iterations, 1),
    uniform in {0, ..., n_steps - 1}). ``cross_last``: the oracle path draws
    the cross batch after the Hessian batches (TTSA), moved here to the
    second column. The numbers of products come from one draw of
    ``n_iterations`` integers: on the CPU the sequence of as many calls of
    :func:`~.stochastic_routines.random_truncation_length` (the tests check
    it), on CUDA a sequence of the same law."""
    lengths = torch.randint(n_steps, (n_iterations,), generator=generator,
                            device=generator.device)
    n_inner = 2 * n_iterations + int(lengths.sum())
    rows = ragged_rows(inner_sampler.sample_block_ids(n_inner), 2 + lengths, n_steps + 1)
    if cross_last:
        cross = rows.gather(1, (1 + lengths)[:, None])
        rows = torch.cat([rows[:, :1], cross, rows[:, 1:-1]], dim=1)
    return (rows, outer_sampler.sample_block_ids(n_iterations)[:, None], lengths[:, None])


def ragged_rows(flat, lengths, width):
    """Consecutive pieces of ``flat`` of the given ``lengths``, one per row,
    padded with 0 (a valid block number, never read) to ``width``: the block
    numbers of iterations that draw a random number of mini-batches."""
    starts = torch.cumsum(lengths, 0) - lengths
    columns = torch.arange(width, device=flat.device)
    index = (starts[:, None] + columns).clamp(max=max(flat.numel() - 1, 0))
    return torch.where(columns < lengths[:, None], flat[index], 0)


# -- chunks of iterations ------------------------------------------------------------
def python_loop_chunk(iteration, data, hyper, carry, *draws):
    """len(draws[0]) iterations of ``iteration`` from ``carry``, in a
    Python loop (unrolled when compiled); row k of each table of ``draws``
    (inner block numbers, outer block numbers, and any other draw) holds
    iteration k's."""
    for k in range(draws[0].shape[0]):
        carry = iteration(data, hyper, carry, *(table[k] for table in draws))
    return carry


def while_loop_chunk(iteration, unroll, data, hyper, carry, *draws):
    """The same iterations in ``torch.while_loop``, whose body compiles once
    whatever the number of iterations, ``unroll`` iterations per turn (at
    most: the largest divisor of the chunk's length up to it)."""
    n_iterations = draws[0].shape[0]
    unroll = max(u for u in range(1, unroll + 1) if n_iterations % u == 0)

    def condition(k, carry):
        return k < n_iterations

    def body(k, carry):
        for offset in range(unroll):
            k_index = (k + offset).reshape(1)
            carry = iteration(data, hyper, carry,
                              *(torch.index_select(table, 0, k_index)[0] for table in draws))
        return k + unroll, carry
    start = torch.zeros((), dtype=torch.int64, device=draws[0].device)
    return while_loop(condition, body, (start, carry))[1]


def chunk_function(iteration, device, compiled, unroll=WHILE_LOOP_UNROLL):
    """The chunk runner of ``iteration`` for ``device``: eager (a Python
    loop), or through ``torch.compile``: on the CPU the ``while_loop`` with
    inductor's C++ wrapper, so that no Python runs between iterations; on
    CUDA the unrolled loop replayed as one CUDA graph (a while loop would
    read its condition back to the host at every iteration)."""
    if not compiled:
        return partial(python_loop_chunk, iteration)
    # The chunk functions share their code objects: one compiled entry per
    # solver and problem shape must fit under dynamo's recompile limit.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    if torch.device(device).type == "cuda":
        return torch.compile(partial(python_loop_chunk, iteration), fullgraph=True,
                             dynamic=False, options={"triton.cudagraphs": True})
    return torch.compile(partial(while_loop_chunk, iteration, unroll), fullgraph=True,
                         dynamic=False, options={"cpp_wrapper": True})
