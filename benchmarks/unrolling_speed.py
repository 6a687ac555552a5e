"""Speed of the unrolled networks and of their training (printed, not a test).

    .venv/bin/python benchmarks/unrolling_speed.py [--device cpu] [--repeats 5]
        [--only forward_small,train_constrained,...]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. Every time is a median over ``--repeats`` runs (``3 x --repeats`` for
the forward passes) after warm-up runs, with the device synchronized before
each clock read; torch keeps its default number of threads; freed CPU
memory is kept for reuse (``keep_freed_memory``, as benchmark_unrolling's
objective sets it for every run). The machine should be otherwise idle: on
a shared CPU the numbers mean little.

- ``matmul_MxKxN``: speed of ``torch.matmul`` of an ``(M, K)`` by a ``(K, N)``
  matrix, at the shapes the networks and their training use.
- ``forward_<network>_n.._m.._L.._N..``: a no-grad forward pass over N
  signals, and its ratio to the bare ``torch.matmul`` calls the network has
  to make (median over pairs of runs, one after the other). Since ``z_0 = 0``,
  the first layer needs no product with ``z``: (F)ISTA ``(N, n) @ (n, m)``
  then ``L - 1`` times ``(N, m) @ (m, m)``; LISTA ``(N, n) @ (n, L m)`` (all
  layers at once) then ``L - 1`` times ``(N, m) @ (m, m)`` with one matrix per
  layer; LISTA-CP, ALISTA, SLISTA ``(N, n) @ (n, m)`` then ``L - 1`` times
  ``(N, m) @ (m, n)`` and ``(N, n) @ (n, m)``.
- ``train_<trainer>_n.._m.._L.._batch..``: training throughput in signals per
  second, timed one epoch at a time over a training set of ``--n-train``
  signals (the constrained trainer's end-of-epoch dual update, a no-grad
  forward pass over the whole training set, is included; ``_dual_update_pass``
  and ``_without_dual_pass`` give it apart). With it, the matmul-bound
  ceiling: the FLOPs of the matrix products of one epoch (see
  ``training_products``) timed at the measured matmul speeds, the time of
  one Adam step, and ``_matmul_and_adam_bound``, the ceiling when each step
  also pays that Adam step (memory-bound: it reads and writes every weight
  and both of its moments, whatever the batch size).
- ``train_lista_constrained_running_...``: the constrained trainer with
  ``dual_update="epoch_running"`` (the multipliers from the epoch's own
  forward passes: no end-of-epoch pass), in float32 and, ``..._bf16``, in
  bfloat16 mixed precision (autocast, float32 master weights), beside
  ``matmul_bf16_over_fp32``, the speed ratio of bfloat16 to float32 matrix
  products at the training's main shape (the bfloat16 target applies where
  it is at least 1.7).
- ``bf16_accuracy``: LISTA trained the same way in float32 and in bfloat16 on
  a small problem, and the ratio of their final test gaps (target: within 5%).
"""
import argparse
import statistics

import torch

from solvers_common.device import get_device, keep_freed_memory, median_time
from solvers_common.lasso import lmbd_max
from solvers_common.unrolled import (
    ALISTA,
    FISTA,
    ISTA,
    LISTA,
    LISTACP,
    SLISTA,
    ConstrainedUnrolledTrainer,
    UnrolledTrainer,
)

SMALL = dict(n=64, m=256)          # Ablin et al. (2019), the simulated dataset
AUTHORS = dict(n=1024, m=1228)     # Hadou et al. (2024)
N_LAYERS = 10
# Hadou et al.'s implementation, constrained LISTA at AUTHORS' size, 10 layers,
# batch 512, on this 2-core CPU (figures given in the issue).
AUTHORS_SIGNALS_PER_S = {"constrained": 1150.0, "constrained_noise": 740.0,
                         "constrained_running": 1150.0, "constrained_running_bf16": 1150.0}
TARGET_SPEEDUP = {"constrained": 1.5, "constrained_noise": 2.0,
                  "constrained_running": 1.2, "constrained_running_bf16": 1.5}
# bfloat16 matrix products at least this much faster than float32's for the
# bfloat16 target to apply (issue 12).
BF16_MATMUL_RATIO_NEEDED = 1.7


def report(name, value, unit, fmt=".3g"):
    print(f"{name}: {value:{fmt}} {unit}".rstrip(), flush=True)


def make_problem(n, m, n_signals, device, seed=0, density=0.1):
    """Unit-norm Gaussian dictionary, Bernoulli-Gaussian codes ``z`` and
    signals ``x = D z``, ``lmbd = 0.1 lmbd_max``. The codes stand in for the
    Lasso solutions: the timings do not depend on them."""
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(n, m, generator=generator)
    D /= torch.linalg.vector_norm(D, dim=0)
    support = torch.rand(n_signals, m, generator=generator) < density
    Z = support * torch.randn(n_signals, m, generator=generator)
    X = Z @ D.T
    lmbd = 0.1 * float(lmbd_max(X, D))
    return D.to(device), X.to(device), Z.to(device), lmbd


class MatmulSpeed:
    """``torch.matmul`` GFLOP/s per shape, measured once and cached, in
    ``dtype`` (bfloat16: the products autocast makes)."""

    def __init__(self, device, repeats, dtype=torch.float32):
        self.device, self.repeats, self.dtype, self.cache = device, repeats, dtype, {}

    def __call__(self, M, K, N):
        if (M, K, N) not in self.cache:
            a = torch.randn(M, K, device=self.device, dtype=self.dtype)
            b = torch.randn(K, N, device=self.device, dtype=self.dtype)
            seconds = median_time(lambda: torch.matmul(a, b), self.device,
                                  max(self.repeats, 5))
            self.cache[M, K, N] = 2 * M * K * N / seconds / 1e9
            suffix = "" if self.dtype == torch.float32 else f"_{str(self.dtype)[6:]}"
            report(f"matmul_{M}x{K}x{N}{suffix}", self.cache[M, K, N], "GFLOP/s", ".1f")
        return self.cache[M, K, N]

    def seconds(self, products):
        """Time of ``count`` products of each shape at the measured speeds."""
        return sum(count * 2 * M * K * N / (self(M, K, N) * 1e9)
                   for (M, K, N), count in products.items())


# ---------------------------------------------------------------------------
# Forward pass against bare matrix products
# ---------------------------------------------------------------------------

def bare_products(name, X, n, m, L, device):
    """Operands of the matrix products a forward pass of ``name`` has to make
    (``z_0 = 0``: none with ``z`` in the first layer)."""
    N = X.shape[0]
    generator = torch.Generator(device=device).manual_seed(1)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, device=device)

    Z, R = draw(N, m), draw(N, n)
    if name in ("ista", "fista"):
        W = draw(m, m)
        return [(X, draw(n, m))] + [(Z, W)] * (L - 1)
    if name == "lista":
        return [(X, draw(n, L * m))] + [(Z, draw(m, m)) for _ in range(L - 1)]
    D, W = draw(m, n), draw(n, m)
    return [(X, W)] + [pair for _ in range(L - 1) for pair in ((Z, D), (R, W))]


def bench_forward(size, N, L, device, repeats):
    n, m = size["n"], size["m"]
    D, X, _, lmbd = make_problem(n, m, N, device)
    networks = {
        "ista": lambda: ISTA(D, lmbd, L),
        "fista": lambda: FISTA(D, lmbd, L),
        "lista": lambda: LISTA(D, lmbd, L),
        "lista_cp": lambda: LISTACP(D, lmbd, L),
        "alista": lambda: ALISTA(D, lmbd, L),
        "slista": lambda: SLISTA(D, lmbd, L),
    }
    for name, build in networks.items():
        network = build().to(device).eval()
        products = bare_products(name, X, n, m, L, device)

        def bare():
            for a, b in products:
                torch.matmul(a, b)

        def forward():
            with torch.no_grad():
                network(X)

        # 3 x repeats pairs of runs, one after the other, so that a slow spell
        # of the machine hits both; the ratio is the median of the pairs'
        median_time(forward, device, 0, warmup=3)
        median_time(bare, device, 0, warmup=3)
        network_times, bare_times = [], []
        for _ in range(3 * repeats):
            network_times.append(median_time(forward, device, 1, warmup=0))
            bare_times.append(median_time(bare, device, 1, warmup=0))
        ratio = statistics.median(a / b for a, b in zip(network_times, bare_times))
        tag = f"{name}_n{n}_m{m}_L{L}_N{N}"
        report(f"forward_{tag}", 1e3 * statistics.median(network_times), "ms")
        report(f"matmul_reference_{tag}", 1e3 * statistics.median(bare_times), "ms")
        report(f"forward_{tag}_ratio_to_matmul", ratio, "x", ".2f")


# ---------------------------------------------------------------------------
# Training throughput
# ---------------------------------------------------------------------------

def training_products(n, m, L, batch, n_train, end_of_epoch_forward, noise):
    """Matrix products of one training epoch of LISTA: ``{(M, K, N): count}``.

    Per step, forward: ``x W_x^T`` for all layers at once and ``L - 1``
    products ``z_l W_z^T`` (``z_0 = 0``); backward: the weight gradients
    ``g^T x`` (all layers at once) and ``g_l^T z_l`` (``L - 1``), and the
    gradients ``g_{l+1} W_z`` of the iterates ``z_1 .. z_{L-1}`` (none for
    ``x``, which needs no gradient). With log-gradient-norm noise, ``D^T (D z
    - x)`` for ``z_1 .. z_{L-1}``, computed as ``z (D^T D) - x D`` (one ``x
    D`` per step) when ``m < 2 n``, else with two products with ``D``. The
    constrained trainer's dual update adds a forward pass over the training
    set once per epoch.
    """
    steps = n_train // batch
    products = {
        (batch, n, L * m): steps,              # x W_x^T, all layers
        (batch, m, m): 2 * (L - 1) * steps,    # z_l W_z^T and g_{l+1} W_z
        (L * m, batch, n): steps,              # grad W_x = g^T x
        (m, batch, m): (L - 1) * steps,        # grad W_z^l = g_l^T z_l
    }
    if noise and m < 2 * n:
        products[batch, m, m] += (L - 1) * steps   # z_l (D^T D)
        products[batch, n, m] = steps              # x D
    elif noise:
        products[batch, m, n] = (L - 1) * steps    # z_l D^T
        products[batch, n, m] = (L - 1) * steps    # (z_l D^T - x) D
    if end_of_epoch_forward:
        products[steps * batch, n, L * m] = 1
        products[steps * batch, m, m] = L - 1
    return products


def flops(products):
    return sum(count * 2 * M * K * N for (M, K, N), count in products.items())


def bench_training(label, size, L, batch, n_train, device, repeats, matmul_speed,
                   constrained=False, noise_level=0.0, init="random", dual_update="epoch",
                   autocast_dtype=None):
    n, m = size["n"], size["m"]
    D, X, Z, lmbd = make_problem(n, m, n_train, device)
    network = LISTA(D, lmbd, L, init=init,
                    generator=torch.Generator(device=device).manual_seed(0))
    kwargs = dict(batch_size=batch, generator=torch.Generator(device=device).manual_seed(0),
                  autocast_dtype=autocast_dtype)
    if noise_level > 0:
        kwargs.update(noise_level=noise_level, noise_scaling="log_gradient_norm")
    if constrained:
        kwargs.update(dual_update=dual_update)
    trainer_class = ConstrainedUnrolledTrainer if constrained else UnrolledTrainer
    trainer = trainer_class(network, X, Z, D, lmbd, **kwargs)
    seconds = median_time(trainer.train_epoch, device, repeats, warmup=1)
    signals = trainer.steps_per_epoch * batch
    tag = f"train_{label}_n{n}_m{m}_L{L}_batch{batch}"
    throughput = signals / seconds
    report(tag, throughput, "signals/s", ".0f")
    end_of_epoch_pass = constrained and dual_update == "epoch"
    products = training_products(n, m, L, batch, n_train, end_of_epoch_pass, noise_level > 0)
    report(f"{tag}_gflop_per_signal", flops(products) / signals / 1e9, "GFLOP", ".4f")
    bound = signals / matmul_speed.seconds(products)
    report(f"{tag}_matmul_bound", bound, "signals/s", ".0f")
    report(f"{tag}_fraction_of_matmul_bound", throughput / bound, "x", ".2f")
    result = dict(throughput=throughput, bound=bound)
    if end_of_epoch_pass:
        # the end-of-epoch dual update alone, and the throughput without it
        dual = median_time(trainer.end_of_epoch, device, repeats, warmup=1)
        steps_only = training_products(n, m, L, batch, n_train, False, noise_level > 0)
        result.update(throughput_steps=signals / (seconds - dual),
                      bound_steps=signals / matmul_speed.seconds(steps_only))
        report(f"{tag}_dual_update_pass", 1e3 * dual, "ms", ".0f")
        report(f"{tag}_without_dual_pass", result["throughput_steps"], "signals/s", ".0f")
        report(f"{tag}_without_dual_pass_matmul_bound", result["bound_steps"],
               "signals/s", ".0f")
    adam = median_time(trainer.optimizer.step, device, repeats)
    report(f"{tag}_adam_step", 1e3 * adam, "ms", ".1f")
    # Adam's step reads and writes every weight and its two moments once per
    # step, whatever the batch: memory-bound time that no matrix product
    # covers. The ceiling with it is what the products and Adam alone allow.
    steps = trainer.steps_per_epoch
    result["bound_with_adam"] = signals / (matmul_speed.seconds(products) + steps * adam)
    report(f"{tag}_matmul_and_adam_bound", result["bound_with_adam"], "signals/s", ".0f")
    return result


def closing_note(name, result):
    authors = AUTHORS_SIGNALS_PER_S[name]
    target = TARGET_SPEEDUP[name] * authors
    for suffix, label in (("", "per epoch"), ("_steps", "without the dual-update pass")):
        if "throughput" + suffix not in result:
            continue
        throughput, bound = result["throughput" + suffix], result["bound" + suffix]
        print(f"# lista_{name}, authors' size, {label}: {throughput:.0f} signals/s = "
              f"{throughput / authors:.2f} x the authors' {authors:.0f}; target "
              f"{target:.0f} {'met' if throughput >= target else 'not met'}; "
              f"matmul-bound ceiling {bound:.0f} ({throughput / bound:.0%} of it, "
              f"the target is {target / bound:.2f} x the ceiling)")
    if "bound_with_adam" in result:
        bound = result["bound_with_adam"]
        print(f"# lista_{name}, authors' size: with Adam's steps the ceiling is {bound:.0f} "
              f"signals/s ({result['throughput'] / bound:.0%} of it reached; the target is "
              f"{target / bound:.2f} x this ceiling)")


def bench_bf16_accuracy(device, epochs=30):
    """Final test gap of LISTA trained in float32 and in bfloat16 (autocast),
    same seed and schedule, on the small problem (n_train 2,000, batch 128)."""
    from solvers_common.lasso import lasso_objective, solve_lasso

    n, m = SMALL["n"], SMALL["m"]
    D, X, _, lmbd = make_problem(n, m, 3000, "cpu")
    D64, X64 = D.double(), X.double()
    Z64, _ = solve_lasso(X64, D64, lmbd)
    X_train, X_test = X[:2000].to(device), X64[2000:]
    F_star = lasso_objective(Z64[2000:], X_test, D64, lmbd)
    gaps = {}
    for name, autocast_dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        network = LISTA(D.to(device), lmbd, N_LAYERS)
        trainer = UnrolledTrainer(network, X_train, Z64[:2000].float().to(device), D.to(device),
                                  lmbd, batch_size=128, autocast_dtype=autocast_dtype,
                                  generator=torch.Generator(device=device).manual_seed(0))
        for _ in range(epochs):
            trainer.train_epoch()
        with torch.no_grad():
            z = network.to("cpu", torch.float64)(X_test)[-1]
        gaps[name] = float((lasso_objective(z, X_test, D64, lmbd) - F_star).mean())
        report(f"bf16_accuracy_{name}_test_gap_after_{epochs}_epochs", gaps[name], "", ".4g")
    ratio = gaps["bfloat16"] / gaps["float32"]
    report("bf16_accuracy_gap_ratio_bf16_over_fp32", ratio, "x", ".3f")
    print(f"# bfloat16 final test gap {ratio:.3f} x float32's: target within 5% "
          f"{'met' if abs(ratio - 1) <= 0.05 else 'not met'}")


SECTIONS = ("forward_small", "forward_authors", "train_small", "train_authors",
            "train_constrained", "train_constrained_noise", "train_constrained_running",
            "bf16_accuracy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:<i> (default: $LEARNOPT_DEVICE, "
                             "then CUDA when available)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=4096,
                        help="training set size (one epoch per timed run)")
    parser.add_argument("--n-forward", type=int, default=1000)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections among {', '.join(SECTIONS)}")
    args = parser.parse_args()
    sections = args.only.split(",")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; accepted: {list(SECTIONS)}")
    device = get_device(args.device)
    # As benchmark_unrolling's objective does for every run.
    kept = keep_freed_memory()
    print(f"# device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, freed CPU memory kept for reuse: "
          f"{'yes' if kept else 'no (not glibc)'}", flush=True)
    torch.manual_seed(0)
    for section, size in (("forward_small", SMALL), ("forward_authors", AUTHORS)):
        if section in sections:
            bench_forward(size, args.n_forward, N_LAYERS, device, args.repeats)

    common = dict(L=N_LAYERS, n_train=args.n_train, device=device, repeats=args.repeats,
                  matmul_speed=MatmulSpeed(device, args.repeats))
    if "train_small" in sections:
        bench_training("lista", SMALL, batch=128, **common)
        bench_training("lista_constrained", SMALL, batch=128, constrained=True, **common)
    if "train_authors" in sections:
        bench_training("lista", AUTHORS, batch=512, **common)
    results = {}
    if "train_constrained" in sections:
        results["constrained"] = bench_training(
            "lista_constrained", AUTHORS, batch=512, constrained=True, **common)
    if "train_constrained_noise" in sections:
        results["constrained_noise"] = bench_training(
            "lista_constrained_noise", AUTHORS, batch=512, constrained=True,
            noise_level=0.1, **common)
    if "train_constrained_running" in sections:
        results["constrained_running"] = bench_training(
            "lista_constrained_running", AUTHORS, batch=512, constrained=True,
            dual_update="epoch_running", **common)
        bf16_speed = MatmulSpeed(device, args.repeats, torch.bfloat16)
        shape = (512, AUTHORS["n"], N_LAYERS * AUTHORS["m"])  # x W_x^T, all layers
        ratio = bf16_speed(*shape) / common["matmul_speed"](*shape)
        report("matmul_bf16_over_fp32", ratio, "x", ".2f")
        results["constrained_running_bf16"] = bench_training(
            "lista_constrained_running_bf16", AUTHORS, batch=512, constrained=True,
            dual_update="epoch_running", autocast_dtype=torch.bfloat16,
            **{**common, "matmul_speed": bf16_speed})
        print(f"# bfloat16 matrix products {ratio:.2f} x float32's: the bfloat16 target "
              f"{'applies' if ratio >= BF16_MATMUL_RATIO_NEEDED else 'does not apply'} "
              f"(needs {BF16_MATMUL_RATIO_NEEDED})")
    if "bf16_accuracy" in sections:
        bench_bf16_accuracy(device)
    for name, result in results.items():
        closing_note(name, result)


if __name__ == "__main__":
    main()
