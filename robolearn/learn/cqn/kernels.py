"""CPU kernels for the encoder's hot path (sources in csrc/): fused per-pixel channel
LayerNorm + SiLU, and the input path (random shift with its layout change, uint8 -> float).

The encoder's LayerNorm over C channels at every pixel, followed by SiLU, costs ATen two
kernels forward and two backward, each a full pass over the activation; at the first layer
(32 channels at 42×42) the per-row overhead of the LayerNorm kernel makes it slower than the
conv it follows. `csrc/layer_norm_silu.cpp` does one pass each way, about half the time of
ATen's kernels. The random shift of a uint8 batch into the encoder's [V, B, H, W, C] layout is
one pass instead of two gathers and two transposing copies, and the uint8 -> float scaling one
pass instead of three. `python -m benchmarks.bench_cqn_update` measures the update with them;
run it again with ROBOLEARN_FUSED_KERNELS=0 to see what they save on your machine.

The kernels are compiled with torch.utils.cpp_extension the first time they are needed
(about 30 s; `make setup` does it ahead) and cached under ~/.cache/torch_extensions (or
$TORCH_EXTENSIONS_DIR) in the folder `build_directory()` names, rebuilt when the sources change.
Where they cannot be used (no C++ compiler or ninja, a CUDA or non-float32 tensor, a layout
they were not built for) the same maths runs as ATen ops, so results agree to float rounding
(the shift exactly) either way. Set ROBOLEARN_FUSED_KERNELS=0 to force the ATen path (to
compare, or to rule the kernels out).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Protocol, cast

import torch
from torch.autograd.function import BackwardCFunction, FunctionCtx
from torch.nn import functional

log = logging.getLogger(__name__)

SOURCES = sorted(Path(__file__).with_name("csrc").glob("*.cpp"))
ENV_SWITCH = "ROBOLEARN_FUSED_KERNELS"


def _isa_flags() -> tuple[str, list[str]]:
    """Instruction-set flags for the build, named so that a cache shared between machines
    never hands one a kernel built for instructions it lacks."""
    try:
        cpu_flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        cpu_flags = set()
    if {"avx512f", "avx512dq", "avx512vl", "avx512bw"} <= cpu_flags:
        return "avx512", ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma"]
    if {"avx2", "fma"} <= cpu_flags:
        return "avx2", ["-mavx2", "-mfma"]
    return "generic", []


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


def module_name() -> str:
    return f"robolearn_cqn_kernels_{_isa_flags()[0]}"


def build_directory() -> Path:
    """Where the build lives: torch's extension cache, one folder per instruction set, Python
    and torch version (a module built against one torch must not be loaded by another) and
    checkout (the build names its sources by path: two checkouts sharing a folder would
    rebuild it in turn, each under the other's running processes)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    checkout = hashlib.sha1(str(SOURCES[0].parent.resolve()).encode()).hexdigest()[:8]
    return Path(root) / (
        f"{module_name()}-{python}-torch{torch.__version__.replace('+', '_')}-{checkout}")


class Kernels(Protocol):
    """What the compiled module exports (csrc/bindings.cpp); pybind11 modules carry no types."""

    def layer_norm_silu_supports(self, channels: int) -> bool: ...

    def layer_norm_silu_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
        save_stats: bool, out: torch.Tensor,
    ) -> list[torch.Tensor]: ...

    def layer_norm_silu_backward(
        self, g: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
        weight: torch.Tensor, bias: torch.Tensor,
    ) -> list[torch.Tensor]: ...

    def shift_views(self, rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor: ...

    def pixels_to_float(self, pixels: torch.Tensor) -> torch.Tensor: ...


@functools.cache
def extension() -> Kernels | None:
    """The compiled kernels, built if needed; None (logged once) if they cannot be built here."""
    if not enabled():
        log.info("CQN CPU kernels off (%s=0); using ATen", ENV_SWITCH)
        return None
    isa, isa_flags = _isa_flags()
    try:
        # Importing cpp_extension warns that there is no CUDA runtime on a CPU-only machine.
        quiet = logging.getLogger("torch.utils.cpp_extension")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            from torch.utils import cpp_extension
        finally:
            quiet.setLevel(level)
        folder = build_directory()
        folder.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        module = cpp_extension.load(  # torch serialises concurrent builders with an flock
            name=module_name(),
            sources=[str(p) for p in SOURCES],
            # -ffast-math at compile time only (the link step does not see it, so the process's
            # float environment is untouched): it lets GCC call glibc's vector expf. -fopenmp:
            # at::parallel_for is an OpenMP region compiled into the caller (without it the
            # kernels run on one thread); libgomp is linked by soname, so the process keeps
            # the one OpenMP runtime torch loaded.
            extra_cflags=["-O3", "-ffast-math", "-fopenmp", *isa_flags],
            extra_ldflags=["-fopenmp"],
            build_directory=str(folder),
            verbose=False,
        )
    except Exception as exc:  # a missing compiler or ninja shows up as several exception types
        log.warning(
            "CQN CPU kernels could not be built (%s: %s); the encoder uses ATen ops instead "
            "(same results, slower). Install g++ and ninja-build to use them",
            type(exc).__name__, (str(exc).splitlines() or [""])[0])
        return None
    elapsed = time.monotonic() - start
    if elapsed > 2.0:
        log.info("built the CQN CPU kernels (%s) in %.0f s, in %s", isa, elapsed, folder)
    return cast(Kernels, module)


def _built() -> Kernels:
    """The kernels, for callers that checked `_usable` first."""
    ext = extension()
    if ext is None:
        raise RuntimeError(
            "robolearn CQN kernels: called without the compiled module; check _usable() first")
    return ext


class _LayerNormSiLU(torch.autograd.Function):
    """Rows [N, C]: y = silu(layer_norm(x) · weight + bias), gradients by the fused kernel."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
    ) -> torch.Tensor:
        y, mean, rstd = _built().layer_norm_silu_forward(
            x, weight, bias, eps, True, torch.empty_like(x))
        ctx.save_for_backward(x, mean, rstd, weight, bias)
        return y

    @staticmethod
    def backward(
        ctx: BackwardCFunction, grad_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        # torch's stub says saved_tensors is a 1-tuple; it holds what forward saved.
        saved = cast(tuple[torch.Tensor, ...], ctx.saved_tensors)
        x, mean, rstd, weight, bias = saved
        grad_x, grad_w, grad_b = _built().layer_norm_silu_backward(
            grad_y.contiguous(), x, mean, rstd, weight, bias)
        return grad_x, grad_w, grad_b, None


def _usable(t: torch.Tensor) -> bool:
    """CPU tensor, not being traced by torch.compile (which fuses the ATen ops itself), and
    the kernels are built."""
    return (t.device.type == "cpu" and not torch.compiler.is_compiling()
            and extension() is not None)


def _fusable(x_bhwc: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        _usable(x_bhwc)
        and x_bhwc.dtype == torch.float32
        and weight.dtype == torch.float32
        and x_bhwc.is_contiguous()
        and _built().layer_norm_silu_supports(x_bhwc.shape[-1])
    )


def channel_layer_norm_silu(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """SiLU(LayerNorm over channels at every pixel) of a [B, C, H, W] activation.

    Channels-last input is normalised without a copy and the result is channels-last. Without
    grad (the next observation's pass) the kernel writes the result over `x`, which the caller
    must not need afterwards.
    """
    x_bhwc = x.permute(0, 2, 3, 1)  # a view when x is channels-last
    if not _fusable(x_bhwc, weight):
        normed = functional.layer_norm(x_bhwc, weight.shape, weight, bias, eps)
        return functional.silu(normed, inplace=not torch.is_grad_enabled()).permute(0, 3, 1, 2)
    rows = x_bhwc.reshape(-1, x_bhwc.shape[-1])  # [N, C], a view
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or bias.requires_grad)
    y: torch.Tensor
    if needs_grad:
        y = _LayerNormSiLU.apply(rows, weight, bias, eps)
    else:
        y = _built().layer_norm_silu_forward(
            rows, weight.detach(), bias.detach(), eps, False, rows)[0]
    return y.view(x_bhwc.shape).permute(0, 3, 1, 2)


def shift_views(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor | None:
    """out[v, b, h, w, c] = rgb[b, v, c, clamp(h + shift[0, v, b]), clamp(w + shift[1, v, b])]
    as one uint8 pass; None where the kernel does not apply (the caller gathers in ATen)."""
    if rgb.dtype != torch.uint8 or not _usable(rgb):
        return None
    return _built().shift_views(rgb.contiguous(), shift.contiguous())


def pixels_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float (pixels − 127.5) / 255 (obs/255 − 0.5), same shape and layout."""
    if pixels.dtype == torch.uint8 and pixels.is_contiguous() and _usable(pixels):
        return _built().pixels_to_float(pixels)
    # ATen: the uint8 -> float conversion is fused into the subtraction.
    return torch.sub(pixels, 127.5).mul_(1.0 / 255.0)
