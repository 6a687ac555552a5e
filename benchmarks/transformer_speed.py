"""Training speed and size of the transformers of the model zoo (printed, not
a test).

    .venv/bin/python benchmarks/transformer_speed.py [--device cpu] [--repeats 7] [--threads 0]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. Two sizes, as in issue 5:

- ``28x28``: 28 x 28 single-channel images, patch 7 (16 patches), width 64,
  depth 4, 4 heads, 10 classes;
- ``32x32``: 32 x 32 RGB images, patch 4 (64 patches), width 192, depth 6,
  6 heads, 10 classes.

For each model and size: ``<model>_train_images_per_second_<size>``, the
images per second of training steps (``zero_grad``, forward and backward pass
of a batch of 128 random images with cross-entropy, ``AdamW.step()``), and
``<model>_n_params_<size>``, its number of parameters. Reference on the
2-core CPU of the issue: the authors' CRATE code trains at about 5,700 and
230 images/s, timm's ViT at about 2,500 and 120 images/s.

The models take turns, blocks of a few steps each, so that a slowdown of the
machine (other processes on the cores) hits all of them alike; a speed is the
median over ``--repeats`` blocks, with the device synchronized before each
clock read. ``--threads`` sets torch's intra-op threads (0, the default:
torch's own choice, all cores).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from solvers_common.device import get_device, synchronize
from solvers_common.models import build_model, sparse_initialization_

BATCH_SIZE = 128
N_CLASSES = 10
SIZES = {
    "28x28": dict(input_shape=(1, 28, 28), patch_size=7, width=64, depth=4, heads=4),
    "32x32": dict(input_shape=(3, 32, 32), patch_size=4, width=192, depth=6, heads=6),
}
# Training steps per timed block, so that a block lasts about a second on the
# issue's CPU.
STEPS_PER_BLOCK = {"28x28": 8, "32x32": 1}


def measure(models, size, device, repeats):
    """Median training images per second and parameter count of each model."""
    settings = dict(SIZES[size])
    input_shape = settings.pop("input_shape")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(BATCH_SIZE, *input_shape, generator=generator).to(device)
    labels = torch.randint(N_CLASSES, (BATCH_SIZE,), generator=generator).to(device)
    runs = {}
    for name in models:
        model = build_model(name, input_shape, N_CLASSES, **settings)
        sparse_initialization_(model, 1.0, torch.Generator().manual_seed(1))
        model = model.to(device).train()
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))

    def block(model, optimizer):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(STEPS_PER_BLOCK[size]):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        synchronize(device)
        return STEPS_PER_BLOCK[size] * BATCH_SIZE / (time.perf_counter() - start)

    for model, optimizer in runs.values():  # warm-up: allocations, first calls
        block(model, optimizer)
    speeds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (model, optimizer) in runs.items():
            speeds[name].append(block(model, optimizer))
    return {name: (statistics.median(speeds[name]),
                   sum(parameter.numel() for parameter in model.parameters()))
            for name, (model, _) in runs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["crate", "vit"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    arguments = parser.parse_args()
    if arguments.threads > 0:
        torch.set_num_threads(arguments.threads)
    device = get_device(arguments.device)
    print(f"# device {device}, {torch.get_num_threads()} threads, batch {BATCH_SIZE}, "
          f"AdamW, median of {arguments.repeats} blocks")
    for size in arguments.sizes:
        for name, (speed, n_params) in measure(arguments.models, size, device,
                                               arguments.repeats).items():
            print(f"{name}_train_images_per_second_{size}: {speed:.0f} images/s")
            print(f"{name}_n_params_{size}: {n_params} parameters")


if __name__ == "__main__":
    main()
