"""A fused Triton kernel for one stacked layer on CUDA (inference form, NHWC), the GPU sibling of
``stacked_cpu.cpp``: both convs of every unit, the bias of the folded BNs, the ReLU between them, and
optionally the block's residual add and final ReLU, in one launch.

Each program owns a tile of output pixels x a tile of units. For each of the second conv's 9 taps it
recomputes the hidden activations of the tap's pixel (9x the first conv's work, which a GPU has to
spare) so no hidden tensor is written: compact nets on big GPUs are bound by launches and memory
traffic, not by multiply-adds. Tested for equality on the CPU through Triton's interpreter
(``TRITON_INTERPRET=1``); timed only where a GPU is lent.
"""

from __future__ import annotations

import functools

import torch

BLOCK_P = 32  # output pixels per program
BLOCK_U = 16  # units per program


@functools.cache
def available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def supported(layer) -> bool:
    from tissuenet.kernels.cpu import supported as cpu_supported

    spec = layer.group_specs[0] if layer.group_specs else None
    return (
        cpu_supported(layer)
        and spec is not None
        and spec.c_h & (spec.c_h - 1) == 0
        and spec.c_out & (spec.c_out - 1) == 0
    )


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def unit_layer(
        x_ptr,
        w1_ptr,
        b1_ptr,
        w2_ptr,
        b2_ptr,
        res_ptr,
        out_ptr,
        n_pixels,
        H,
        W,
        Ho,
        Wo,
        M,
        STRIDE: tl.constexpr,
        CH: tl.constexpr,
        CO: tl.constexpr,
        HAS_RES: tl.constexpr,
        RELU: tl.constexpr,
        BLOCK_P: tl.constexpr,
        BLOCK_U: tl.constexpr,
    ):
        p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        u = tl.program_id(1) * BLOCK_U + tl.arange(0, BLOCK_U)
        ch = tl.arange(0, CH)
        co = tl.arange(0, CO)
        pmask = p < n_pixels
        umask = u < M
        n = p // (Ho * Wo)
        oy = (p // Wo) % Ho
        ox = p % Wo
        C = 2 * M
        b1 = tl.load(b1_ptr + u[:, None] * CH + ch[None, :], mask=umask[:, None], other=0.0)  # [U, CH]
        b2 = tl.load(b2_ptr + u[:, None] * CO + co[None, :], mask=umask[:, None], other=0.0)  # [U, CO]
        acc = tl.zeros((BLOCK_P, BLOCK_U, CO), dtype=tl.float32) + b2[None, :, :]
        for t2 in tl.static_range(9):
            hy = oy + t2 // 3 - 1
            hx = ox + t2 % 3 - 1
            hvalid = pmask & (hy >= 0) & (hy < Ho) & (hx >= 0) & (hx < Wo)
            h = tl.zeros((BLOCK_P, BLOCK_U, CH), dtype=tl.float32) + b1[None, :, :]
            for t1 in tl.static_range(9):
                iy = hy * STRIDE + t1 // 3 - 1
                ix = hx * STRIDE + t1 % 3 - 1
                valid = hvalid & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
                base = ((n * H + iy) * W + ix) * C
                for i in tl.static_range(2):
                    xv = tl.load(
                        x_ptr + base[:, None] + 2 * u[None, :] + i, mask=valid[:, None] & umask[None, :], other=0.0
                    )  # [P, U]
                    w = tl.load(
                        w1_ptr + ((u[:, None] * CH + ch[None, :]) * 2 + i) * 9 + t1, mask=umask[:, None], other=0.0
                    )  # [U, CH]
                    h += xv[:, :, None] * w[None, :, :]
            h = tl.maximum(h, 0.0) * hvalid[:, None, None].to(tl.float32)
            w2 = tl.load(
                w2_ptr + ((u[:, None, None] * CO + co[None, :, None]) * CH + ch[None, None, :]) * 9 + t2,
                mask=umask[:, None, None],
                other=0.0,
            )  # [U, CO, CH]
            acc += tl.sum(h[:, :, None, :] * w2[None, :, :, :], axis=3)
        offs = p[:, None, None] * (M * CO) + u[None, :, None] * CO + co[None, None, :]
        mask = pmask[:, None, None] & umask[None, :, None]
        if HAS_RES:
            acc += tl.load(res_ptr + offs, mask=mask, other=0.0)
        if RELU:
            acc = tl.maximum(acc, 0.0)
        tl.store(out_ptr + offs, acc, mask=mask)

    return unit_layer


class TritonStacked:
    """Callable ``(x, residual=None) -> y`` on CUDA (or on the CPU under ``TRITON_INTERPRET=1``)."""

    def __init__(self, layer) -> None:
        spec, grp = layer.group_specs[0], layer.groups[0]
        self.m, self.c_h, self.c_out, self.stride = len(layer.units), spec.c_h, spec.c_out, layer.stride
        self.final_relu = layer.final_relu
        self.w1, self.b1 = grp.op1.weight.detach().float().contiguous(), grp.op1.bias.detach().float().contiguous()
        self.w2, self.b2 = grp.op2.weight.detach().float().contiguous(), grp.op2.bias.detach().float().contiguous()

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        import triton

        x = x.contiguous(memory_format=torch.channels_last)
        n, c, h, w = x.shape
        ho, wo = (h - 1) // self.stride + 1, (w - 1) // self.stride + 1
        out = torch.empty(n, self.m * self.c_out, ho, wo, device=x.device, memory_format=torch.channels_last)
        res = residual.contiguous(memory_format=torch.channels_last) if residual is not None else out
        grid = (triton.cdiv(n * ho * wo, BLOCK_P), triton.cdiv(self.m, BLOCK_U))
        _kernel()[grid](
            x,
            self.w1,
            self.b1,
            self.w2,
            self.b2,
            res,
            out,
            n * ho * wo,
            h,
            w,
            ho,
            wo,
            self.m,
            STRIDE=self.stride,
            CH=self.c_h,
            CO=self.c_out,
            HAS_RES=residual is not None,
            RELU=self.final_relu or residual is not None,
            BLOCK_P=BLOCK_P,
            BLOCK_U=BLOCK_U,
        )
        return out
