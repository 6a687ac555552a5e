"""Speed of plug-and-play and of unrolled restoration training (printed, not
a test).

    .venv/bin/python benchmarks/inverse_problems_speed.py [--device cpu]
        [--repeats 5] [--size 64] [--n-images 8]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. Every time is a median over ``--repeats`` runs after a warm-up run,
with the device synchronized before each clock read, measured and bare runs
alternated. The machine should be otherwise idle: on a shared CPU the
numbers mean little.

- ``pnp_<mode>_<Ltrain>/<Lpnp>``: iterations per second of
  :class:`~solvers_common.inverse_problems.DictionaryPnP` (warm-started,
  ``--n-images`` gray images of ``--size`` pixels, Gaussian blur, 16 atoms of
  5 x 5), and its ratio to the bare calls it makes: per iteration one
  ``A``, one ``A^T`` and ``L`` layers of ``conv2d`` and ``conv_transpose2d``
  with the step computed once (target <= 1.2x).
- ``pnp_cost_20_over_1``: the time of one 20-layer PnP iteration over a
  1-layer one (Kowalski et al. 2024's 20/20 against 20/1).
- ``train_unrolled_pgd``: training images per second of
  :class:`~solvers_common.inverse_problems.RestorationTrainer` on
  :class:`~solvers_common.inverse_problems.UnrolledProximalGradient`
  (5 layers, width 16, batch 16, inpainting), unconstrained and constrained,
  and its ratio to the bare step: the same layers written as one loop
  (operator and prox calls), the loss, backward and Adam (target <= 1.2x).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from solvers_common.device import get_device, synchronize
from solvers_common.inverse_problems import (
    ConvolutionalDictionaryDenoiser,
    DictionaryPnP,
    RestorationTrainer,
    UnrolledProximalGradient,
    make_physics,
    measure,
    operator_norm,
)


def paired(measured, bare, device, repeats):
    """Median times of ``measured`` and ``bare``, alternated run by run."""
    measured(), bare()  # warm-up
    times = ([], [])
    for _ in range(repeats):
        for function, bucket in zip((measured, bare), times):
            synchronize(device)
            start = time.perf_counter()
            function()
            synchronize(device)
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def bare_pnp(denoiser, physics, y, step, n_iterations, n_layers):
    """The calls DictionaryPnP makes (warm-started analysis), nothing else."""
    weight, lmbd = denoiser.weight.detach(), denoiser.lmbd
    gamma = denoiser.step(min(denoiser.step_scaling, 1.0))
    x = physics.A_adjoint(y)
    code = None
    for _ in range(n_iterations):
        x_tilde = x - step * physics.A_adjoint(physics.A(x) - y)
        if code is None:
            code = torch.zeros_like(F.conv2d(x_tilde, weight))
        for _ in range(n_layers):
            code = (code + gamma * F.conv2d(x_tilde - F.conv_transpose2d(code, weight), weight)
                    ).clamp(-lmbd, lmbd)
        x = x_tilde - F.conv_transpose2d(code, weight)
    return x


def pnp_speed(args, device):
    shape = (1, args.size, args.size)
    physics = make_physics("blur", shape, blur_sigma=1.0).to(device, torch.float32)
    generator = torch.Generator(device).manual_seed(0)
    clean = torch.rand((args.n_images, *shape), generator=generator, device=device)
    y = measure(physics, clean, 0.02, generator)
    step = 1.0 / operator_norm(physics, shape, dtype=torch.float32, device=device)
    denoiser = ConvolutionalDictionaryDenoiser(16, 5, 1, lmbd=0.05, mode="analysis",
                                               generator=generator).to(device)
    per_iteration = {}
    for n_layers in (20, 1):
        restorer = DictionaryPnP(denoiser, args.pnp_iterations, step, n_layers=n_layers)
        with torch.no_grad():
            measured, bare = paired(
                lambda: restorer(y, physics),
                lambda: bare_pnp(denoiser, physics, y, step, args.pnp_iterations, n_layers),
                device, args.repeats)
        per_iteration[n_layers] = measured / args.pnp_iterations
        print(f"pnp_analysis_20/{n_layers}: {args.pnp_iterations / measured:.1f} iterations/s "
              f"({args.n_images} images of {args.size} x {args.size}), "
              f"{measured / bare:.2f}x the bare calls")
    print(f"pnp_cost_20_over_1: {per_iteration[20] / per_iteration[1]:.1f}")


def bare_training_step(network, physics, y, clean, optimizer):
    x = physics.A_adjoint(y)
    for layer, prox in enumerate(network.proxes):
        mu = network.step * F.relu(network.step_scales[layer])
        x = prox(x - mu * physics.A_adjoint(physics.A(x) - y))
    loss = ((x - clean) ** 2).sum(dim=(1, 2, 3)).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def training_speed(args, device):
    shape = (1, args.size, args.size)
    generator = torch.Generator(device).manual_seed(0)
    physics = make_physics("inpainting", shape, 0.5, generator=torch.Generator().manual_seed(1)
                           ).to(device, torch.float32)
    images = torch.rand((4 * args.batch_size, *shape), generator=generator, device=device)
    lipschitz = operator_norm(physics, shape, dtype=torch.float32, device=device)
    for constrained in (False, True):
        torch.manual_seed(0)
        network = UnrolledProximalGradient(5, 1, 1.0 / lipschitz, width=16).to(device)
        trainer = RestorationTrainer(network, physics, images, 0.02, lipschitz,
                                     constrained=constrained, batch_size=args.batch_size,
                                     generator=generator)
        bare_network = UnrolledProximalGradient(5, 1, 1.0 / lipschitz, width=16).to(device)
        optimizer = torch.optim.Adam(bare_network.parameters(), lr=1e-3)
        y, clean = trainer.X[:args.batch_size], images[:args.batch_size]
        steps = args.train_steps

        def bare():
            for _ in range(steps):
                bare_training_step(bare_network, physics, y, clean, optimizer)

        measured, bare_time = paired(lambda: trainer.train(steps), bare, device, args.repeats)
        label = "constrained" if constrained else "unconstrained"
        print(f"train_unrolled_pgd_{label}: {steps * args.batch_size / measured:.0f} images/s "
              f"(batch {args.batch_size} of {args.size} x {args.size}), "
              f"{measured / bare_time:.2f}x the bare step")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--pnp-iterations", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=10)
    args = parser.parse_args()
    device = get_device(args.device)
    print(f"# device {device}, torch threads {torch.get_num_threads()}")
    pnp_speed(args, device)
    training_speed(args, device)


if __name__ == "__main__":
    main()
