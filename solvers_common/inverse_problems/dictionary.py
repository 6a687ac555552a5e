"""Unrolled convolutional dictionary denoisers (Kowalski, Malezieux, Moreau &
Repetti 2024, "Analysis and synthesis denoisers for forward-backward
plug-and-play algorithms", Section 3).

A dictionary is a convolution weight ``W`` of shape ``(K, C, k, k)``: ``K``
atoms of ``k x k`` pixels over ``C`` channels. With ``W x = conv2d(x, W)``
(valid convolution, ``(N, C, H, W) -> (N, K, H-k+1, W-k+1)``) and ``W^T`` its
adjoint (``conv_transpose2d``), the denoiser of a noisy image ``x`` solves

- synthesis: ``z* = argmin_z 1/2 ||W^T z - x||^2 + lmbd ||z||_1``, returns ``W^T z*``
  (their eq. (11)); one layer is an ISTA step
  ``z <- ST(z - gamma W (W^T z - x), gamma lmbd)``, ``gamma = 1 / ||W||^2``;
- analysis: ``x* = argmin_u 1/2 ||u - x||^2 + lmbd ||W u||_1``, through its
  dual ``min_{|v| <= lmbd} 1/2 ||x - W^T v||^2`` (their eq. (14)): one layer is
  a projected gradient step ``v <- clip(v + gamma W (x - W^T v), -lmbd, lmbd)``
  with ``gamma = 1.8 / ||W||^2`` (the authors' step), and ``x* = x - W^T v``.

``L`` layers from a given code (``z`` or ``v``) form the denoiser; warm
starting the code from the previous outer iteration is what makes a 1-layer
denoiser reach the fixed point of the exact one in plug-and-play
(their Proposition 4.2 for synthesis and 4.4 for analysis).
The synthesis denoiser removes each image's mean first and adds it back, as
the authors' ``avg`` option (they also divide by the standard deviation).
"""
import torch
import torch.nn.functional as F
from torch import nn

MODES = ("synthesis", "analysis")
ATOM_INITS = ("gaussian", "zero_mean")
DEFAULT_STEP_SCALING = {"synthesis": 1.0, "analysis": 1.8}


def dictionary_norm(weight, n_fft=64):
    """``||W||_2^2`` of the convolution by ``weight``, from its Fourier
    transform on an ``n_fft x n_fft`` grid: the largest eigenvalue over
    frequencies of ``M(w) M(w)^H``, ``M(w)`` the ``C x K`` transfer matrix.
    Exact for circular convolutions of that size, a tight estimate otherwise."""
    n_fft = max(n_fft, 4 * weight.shape[-1])
    spectrum = torch.fft.fft2(weight.detach().to(torch.float64), s=(n_fft, n_fft))
    transfer = spectrum.permute(2, 3, 1, 0)  # (n, n, C, K)
    gram = transfer @ transfer.conj().transpose(-1, -2)
    return float(torch.linalg.eigvalsh(gram)[..., -1].max())


def soft_threshold(z, threshold):
    return z - z.clamp(-threshold, threshold)


class ConvolutionalDictionaryDenoiser(nn.Module):
    """``L`` unrolled layers of synthesis or analysis convolutional sparse
    coding with a learned dictionary ``weight`` (shared by the layers, as the
    authors' ``D_shared``) and a fixed ``lmbd``.

    ``forward(x, code=None, n_layers=None)`` returns ``(x_hat, code)``: the
    denoised images and the final code (``z`` or the dual ``v``), which a
    plug-and-play loop hands back as ``code`` at its next call to warm start.
    ``n_layers`` overrides the number of layers (``L_PnP`` after training with
    ``L_train``), ``lmbd`` the regularization (the authors set it anew for
    plug-and-play, ``set_lmbd(reg_par)``) and ``step`` the layers' step
    (default ``step_scaling / ||W||^2``, from the weights at every call).

    ``atom_init``: unit-norm Gaussian atoms (``"gaussian"``), or the same with
    each atom's mean removed first (``"zero_mean"``), high-pass filters like
    TV's finite differences: an analysis prior with a non-zero-mean atom
    penalizes the image's brightness, and its untrained plug-and-play fell
    below ``A^T y`` (6.6 against 9.6 dB on 32 x 32 inpainting) where the
    zero-mean one reached 29 dB.
    """

    def __init__(self, n_atoms, kernel_size, n_channels=1, lmbd=0.05, n_layers=20,
                 mode="synthesis", step_scaling=None, generator=None, dtype=torch.float32,
                 atom_init="gaussian"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is unknown; accepted: {list(MODES)}.")
        for name, value in (("n_atoms", n_atoms), ("kernel_size", kernel_size),
                            ("n_layers", n_layers)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if not lmbd > 0:
            raise ValueError(f"lmbd must be positive, got {lmbd!r}.")
        if atom_init not in ATOM_INITS:
            raise ValueError(f"atom_init={atom_init!r} is unknown; accepted: "
                             f"{list(ATOM_INITS)}.")
        self.mode, self.lmbd, self.n_layers = mode, float(lmbd), int(n_layers)
        self.kernel_size = int(kernel_size)
        self.step_scaling = DEFAULT_STEP_SCALING[mode] if step_scaling is None else step_scaling
        weight = torch.randn(int(n_atoms), n_channels, self.kernel_size, self.kernel_size,
                             generator=generator, dtype=dtype,
                             device=getattr(generator, "device", None))
        if atom_init == "zero_mean":
            weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        # Unit-norm atoms.
        weight = weight / torch.linalg.vector_norm(weight, dim=(1, 2, 3), keepdim=True)
        self.weight = nn.Parameter(weight)

    def step(self, step_scaling=None):
        scaling = self.step_scaling if step_scaling is None else step_scaling
        return scaling / dictionary_norm(self.weight)

    def code_shape(self, x):
        k = self.kernel_size
        if min(x.shape[-2:]) < k:
            raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the "
                             f"atoms (kernel_size={k}).")
        return (x.shape[0], self.weight.shape[0], x.shape[-2] - k + 1, x.shape[-1] - k + 1)

    def forward(self, x, code=None, n_layers=None, lmbd=None, step=None):
        n_layers = self.n_layers if n_layers is None else int(n_layers)
        shape = self.code_shape(x)
        if code is None:
            code = x.new_zeros(shape)
        elif tuple(code.shape) != shape:
            raise ValueError(f"code has shape {tuple(code.shape)}, expected {shape}.")
        gamma, weight = self.step() if step is None else float(step), self.weight
        lmbd = self.lmbd if lmbd is None else float(lmbd)
        if self.mode == "synthesis":
            mean = x.mean(dim=(-3, -2, -1), keepdim=True)
            centered = x - mean
            for _ in range(n_layers):
                residual = F.conv_transpose2d(code, weight) - centered
                code = soft_threshold(code - gamma * F.conv2d(residual, weight), gamma * lmbd)
            return mean + F.conv_transpose2d(code, weight), code
        for _ in range(n_layers):
            code = (code + gamma * F.conv2d(x - F.conv_transpose2d(code, weight), weight)
                    ).clamp(-lmbd, lmbd)
        return x - F.conv_transpose2d(code, weight), code


def sparse_coding_fista(x, weight, lmbd, mode="synthesis", n_iter=5000, tol=1e-14):
    """The reference denoising of ``x`` by the dictionary ``weight``: FISTA
    (Beck & Teboulle 2009) on the synthesis problem, or on the analysis
    problem's dual (accelerated projected gradient), step ``1 / ||W||^2``
    from a power iteration on ``x``'s size. Run in ``x``'s dtype (float64 for
    a reference). Returns the denoised images (the synthesis one with the
    same mean removal as :class:`ConvolutionalDictionaryDenoiser`)."""
    k = weight.shape[-1]
    shape = (x.shape[0], weight.shape[0], x.shape[-2] - k + 1, x.shape[-1] - k + 1)
    # ||W||^2 by power iteration on W W^T acting on codes.
    v = torch.ones(shape, dtype=x.dtype)
    for _ in range(200):
        v = F.conv2d(F.conv_transpose2d(v / torch.linalg.vector_norm(v), weight), weight)
    step = 1.0 / float(torch.linalg.vector_norm(v))
    if mode == "synthesis":
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        target = x - mean
    else:
        target = x
    code = x.new_zeros(shape)
    momentum_point, t = code, 1.0
    for _ in range(n_iter):
        residual = F.conv_transpose2d(momentum_point, weight) - target
        if mode == "synthesis":
            new = soft_threshold(momentum_point - step * F.conv2d(residual, weight), step * lmbd)
        else:
            new = (momentum_point - step * F.conv2d(residual, weight)).clamp(-lmbd, lmbd)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        momentum_point = new + (t - 1) / t_new * (new - code)
        change = float(torch.linalg.vector_norm(new - code))
        code, t = new, t_new
        if change < tol:
            break
    if mode == "synthesis":
        return mean + F.conv_transpose2d(code, weight)
    return x - F.conv_transpose2d(code, weight)
