"""Networks, sparse initialization, sparsity metrics, magnitude pruning and
the classification training loop of solvers_common, on hand-built cases."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from solvers_common.classification import (
    ClassificationTrainer,
    check_training_options,
    loss_and_accuracy,
    random_crop_flip,
)
from solvers_common.metrics import density, flops_ratio, kernel_density, neuron_density
from solvers_common.models import build_model, sparse_initialization_
from solvers_common.pruning import GlobalMagnitudePruning, cubic_density_schedule


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, input_shape, n_parameters", [
    # 64*200 + 200 + 200*80 + 80 + 80*10 + 10
    ("mlp", (1, 8, 8), 29890),
    # conv 1*64*25 + 64, conv 64*64*25 + 64, fc 1024*128 + 128, fc 128*10 + 10
    ("convnet", (1, 28, 28), 1664 + 102464 + 131200 + 1290),
    ("resnet18", (3, 32, 32), None),
])
def test_models_map_images_to_logits(name, input_shape, n_parameters):
    model = build_model(name, input_shape, 10).eval()
    with torch.no_grad():
        logits = model(torch.zeros(2, *input_shape))
    assert logits.shape == (2, 10)
    if n_parameters is not None:
        assert sum(p.numel() for p in model.parameters()) == n_parameters


def test_resnet18_is_the_cifar_variant():
    model = build_model("resnet18", (3, 32, 32), 10)
    # 3 x 3 stride-1 stem and no max-pooling: 4 x 4 features before pooling.
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    features = []
    model.layer4.register_forward_hook(lambda m, i, o: features.append(o.shape))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    assert features == [(1, 512, 4, 4)]
    assert 11.1e6 < sum(p.numel() for p in model.parameters()) < 11.2e6


def test_build_model_rejects_bad_input():
    with pytest.raises(ValueError, match="model='vgg'.*'mlp', 'convnet', 'resnet18'"):
        build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="convnet.*input_shape=\\(1, 8, 8\\)"):
        build_model("convnet", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("mlp", (8, 8), 10)
    with pytest.raises(ValueError, match="n_classes"):
        build_model("mlp", (1, 8, 8), 1)


# ---------------------------------------------------------------------------
# Sparse initialization (Bungert et al. 2022)
# ---------------------------------------------------------------------------


def test_sparse_initialization_statistics():
    model = nn.Sequential(nn.Linear(500, 400), nn.ReLU(), nn.Linear(400, 300))
    sparse_initialization_(model, 0.05, _generator(0))
    for layer in (model[0], model[2]):
        weight = layer.weight.detach()
        nonzero = weight[weight != 0]
        fan_in = weight.shape[1]
        # 200,000 and 120,000 Bernoulli(0.05) draws: within 5 standard deviations.
        assert abs(nonzero.numel() / weight.numel() - 0.05) < 5 * math.sqrt(
            0.05 * 0.95 / weight.numel())
        # Non-zero weights ~ N(0, 2 / (r n)), about 10,000 of them.
        np.testing.assert_allclose(nonzero.var().item(), 2 / (0.05 * fan_in), rtol=0.05)
        bias = layer.bias.detach()
        assert bias.min() >= 0 and bias.max() <= 1 / math.sqrt(fan_in)
    # The variance of a pre-activation is the dense Kaiming one, 2 / n * n x^2.
    x = torch.randn(2000, 500, generator=_generator(1))
    pre_activation = x @ model[0].weight.detach().T
    np.testing.assert_allclose(pre_activation.var().item(), 2.0, rtol=0.1)


def test_sparse_initialization_structures():
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(16, 50))
    sparse_initialization_(model, 0.3, _generator(2), structure="rows")
    for weight in (model[0].weight, model[2].weight):
        rows = weight.detach().reshape(weight.shape[0], -1)
        nonzero_rows = (rows != 0).any(dim=1)
        assert torch.all((rows != 0).all(dim=1) == nonzero_rows)  # whole rows
        assert 0 < nonzero_rows.sum() < rows.shape[0]
    sparse_initialization_(model, 0.3, _generator(2), structure="kernels")
    kernels = model[0].weight.detach().reshape(16 * 8, 9)
    assert torch.all((kernels != 0).all(dim=1) == (kernels != 0).any(dim=1))
    assert 0.2 < (kernels != 0).any(dim=1).float().mean() < 0.4
    # Linear weights have no kernels: single entries.
    linear = model[2].weight.detach()
    assert not torch.all((linear != 0).all(dim=1) == (linear != 0).any(dim=1))


def test_sparse_initialization_is_reproducible_and_resets_normalization():
    first = build_model("resnet18", (3, 8, 8), 10)
    second = build_model("resnet18", (3, 8, 8), 10)
    with torch.no_grad():
        first.bn1.weight.fill_(3.0)
    sparse_initialization_(first, 0.1, _generator(3), structure="kernels")
    sparse_initialization_(second, 0.1, _generator(3), structure="kernels")
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.all(first.bn1.weight == 1)
    other = sparse_initialization_(build_model("resnet18", (3, 8, 8), 10), 0.1,
                                   _generator(4), structure="kernels")
    assert not torch.equal(other.conv1.weight, first.conv1.weight)


@pytest.mark.parametrize("arguments, parameter", [
    (dict(density=0.0), "density"),
    (dict(density=1.5), "density"),
    (dict(structure="filters"), "structure='filters'"),
])
def test_sparse_initialization_rejects_bad_input(arguments, parameter):
    call = dict(model=nn.Linear(3, 2), density=0.5, generator=_generator())
    call.update(arguments)
    with pytest.raises(ValueError, match=parameter):
        sparse_initialization_(**call)


def test_sparse_initialization_refuses_layers_it_does_not_draw():
    model = nn.Sequential(nn.Linear(3, 4), nn.Embedding(5, 4))
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError, match="1.weight"):
        sparse_initialization_(model, 0.5, _generator())
    assert torch.equal(model[0].weight, before)  # checked before any draw


# ---------------------------------------------------------------------------
# Sparsity metrics on hand-built models
# ---------------------------------------------------------------------------


def _hand_built_model():
    """Conv2d(1 -> 2, 3 x 3) on 5 x 5 images (3 x 3 outputs), then
    Linear(18 -> 4) and Linear(4 -> 3)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4),
                          nn.Linear(4, 3))
    with torch.no_grad():
        for layer in (model[0], model[2], model[3]):
            layer.weight.zero_()
            layer.bias.fill_(1.0)  # biases never count
        model[0].weight[1, 0, 0, 0] = 1.0          # 1 of 18 conv weights, kernel 2 of 2
        model[2].weight[0, :] = 1.0                # 18 of 72, neuron 1 of 4
        model[2].weight[3, 5] = -2.0               # 1 more, neuron 4 of 4
        model[3].weight[2, 1] = 0.5                # 1 of 12, neuron 3 of 3
    return model


def test_sparsity_metrics_on_a_hand_built_model():
    model = _hand_built_model()
    assert density(model) == (1 + 19 + 1) / (18 + 72 + 12)
    assert neuron_density(model) == (2 + 1) / (4 + 3)
    assert kernel_density(model) == 1 / 2
    # Multiply-adds: the conv weights are used at 9 positions each.
    assert flops_ratio(model, (1, 5, 5)) == (9 * 1 + 19 + 1) / (9 * 18 + 72 + 12)


def test_metrics_of_layers_a_model_lacks_are_nan():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert math.isnan(kernel_density(mlp))
    assert not math.isnan(density(mlp))
    convolutions = nn.Sequential(nn.Conv2d(1, 1, 1))
    assert math.isnan(neuron_density(convolutions))


def test_flops_ratio_of_a_convnet():
    model = build_model("convnet", (1, 28, 28), 10)
    with torch.no_grad():
        model[0].weight.zero_()  # the first convolution: 24 x 24 positions
    dense = 24 * 24 * 1600 + 8 * 8 * 102400 + 131072 + 1280
    assert flops_ratio(model, (1, 28, 28)) == (dense - 24 * 24 * 1600) / dense
    assert model.training  # the forward pass used to count restores the mode


# ---------------------------------------------------------------------------
# Global magnitude pruning (Zhu & Gupta 2018)
# ---------------------------------------------------------------------------


def test_cubic_density_schedule():
    assert cubic_density_schedule(0, 0.1, 2, 6) == 1.0
    assert cubic_density_schedule(2, 0.1, 2, 6) == 1.0
    # progress 1/2: 0.1 + 0.9 * (1/2)^3
    assert cubic_density_schedule(4, 0.1, 2, 6) == pytest.approx(0.1 + 0.9 / 8)
    assert cubic_density_schedule(6, 0.1, 2, 6) == 0.1
    assert cubic_density_schedule(9, 0.1, 2, 6) == 0.1


def test_global_magnitude_pruning_removes_the_smallest_weights_of_all_layers():
    model = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.arange(1, 21, dtype=torch.float32).reshape(5, 4))
        model[1].weight.copy_(-torch.arange(21, 31, dtype=torch.float32).reshape(2, 5) / 10)
    # 30 weights; the second layer's are 2.1 .. 3.0 in absolute value.
    pruning = GlobalMagnitudePruning(model, target_density=0.5, start_epoch=0, end_epoch=1)
    pruning.step(1)
    pruned = pruning.pruned_copy()
    assert density(pruned) == 0.5
    kept = torch.cat([pruned[0].weight.flatten(), pruned[1].weight.flatten()])
    # The 15 smallest magnitudes go: 1, 2, 3 (layer 1) and 2.1 .. 3.0 (layer 2),
    # then 4 and 5 of layer 1.
    assert torch.count_nonzero(pruned[1].weight) == 0
    assert torch.equal(torch.sort(kept[kept != 0].abs()).values,
                       torch.arange(6, 21, dtype=torch.float32))
    # The copy holds plain parameters; the trained model keeps its mask.
    assert {name for name, _ in pruned.named_parameters()} == {
        "0.weight", "0.bias", "1.weight", "1.bias"}
    assert hasattr(model[0], "weight_mask")


def test_magnitude_pruning_follows_its_schedule_during_training():
    generator = _generator(5)
    X, y = torch.randn(64, 1, 4, 4, generator=generator), torch.randint(3, (64,))
    model = sparse_initialization_(build_model("mlp", (1, 4, 4), 3), 1.0, _generator(6))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = ClassificationTrainer(model, optimizer, X, y, 16, generator)
    pruning = GlobalMagnitudePruning(model, 0.2, start_epoch=1, end_epoch=4)
    densities = []
    for _ in range(6):
        trainer.train_epoch()
        pruning.step(trainer.epochs_done)
        densities.append(density(pruning.pruned_copy()))
    expected = [cubic_density_schedule(epoch, 0.2, 1, 4) for epoch in range(1, 7)]
    np.testing.assert_allclose(densities, expected, atol=1 / 19000)


def test_pruning_rejects_bad_input():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="density"):
        GlobalMagnitudePruning(model, 0.0, 0, 2)
    with pytest.raises(ValueError, match="start_epoch=3"):
        GlobalMagnitudePruning(model, 0.5, 3, 2)


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------


def test_random_crop_flip_against_a_loop():
    images = torch.randn(6, 2, 5, 7, generator=_generator(7))
    out = random_crop_flip(images, _generator(8), padding=2)
    generator = _generator(8)
    shifts = torch.randint(0, 5, (2, 6), generator=generator)
    flips = torch.rand(6, generator=generator) < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(6):
        expected = padded[i, :, shifts[0, i]:shifts[0, i] + 5, shifts[1, i]:shifts[1, i] + 7]
        if flips[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)


def test_loss_and_accuracy_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    X = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]], [[[2.0, 0.0]]]])
    y = torch.tensor([0, 0, 0])
    loss, accuracy = loss_and_accuracy(model, X, y, batch_size=2)
    log_sum = [math.log(math.e + 1), math.log(1 + math.e), math.log(math.e ** 2 + 1)]
    assert accuracy == 2 / 3
    assert loss == pytest.approx((log_sum[0] - 1 + log_sum[1] - 0 + log_sum[2] - 2) / 3)


def test_trainer_visits_every_image_once_per_epoch():
    X = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1)
    y = torch.zeros(10, dtype=torch.int64)
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 2))
    model.register_forward_pre_hook(lambda m, inputs: seen.extend(inputs[0].flatten().tolist()))
    trainer = ClassificationTrainer(model, torch.optim.SGD(model.parameters(), lr=0.0), X, y,
                                    batch_size=4, generator=_generator(9))
    trainer.train_epoch()
    assert sorted(seen) == list(range(10))  # batches of 4, 4 and 2
    assert trainer.epochs_done == 1


def test_plateau_schedule_halves_the_learning_rate():
    X, y = torch.zeros(8, 1, 1, 1), torch.zeros(8, dtype=torch.int64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 2))
    # The optimizer holds a parameter outside the model: the loss stays constant.
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    trainer = ClassificationTrainer(model, optimizer, X, y, 8, _generator(), "plateau")
    learning_rates = []
    for _ in range(8):
        trainer.train_epoch()
        learning_rates.append(optimizer.param_groups[0]["lr"])
    # The first epoch is the best; after 6 epochs without a 1% decrease
    # (more than the patience of 5) the rate is halved.
    assert learning_rates == [1.0] * 6 + [0.5, 0.5]


@pytest.mark.parametrize("arguments, parameter", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=8, lr_schedule="linear"), "lr_schedule='linear'.*'step'.*'plateau'"),
    (dict(batch_size=8, augmentation="mixup"), "augmentation='mixup'"),
])
def test_training_options_reject_bad_input(arguments, parameter):
    with pytest.raises(ValueError, match=parameter):
        check_training_options(**arguments)
