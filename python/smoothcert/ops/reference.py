"""Pure-PyTorch twins of the smoothcert kernels: the test oracle and the bench baseline.

They follow the same counter layout as ``csrc/common/philox.h`` bit for bit
(Philox words are integers, so they match exactly) and evaluate log/sin/cos in
float64, i.e. the mathematically exact version of the kernels' float32
polynomials: kernel output must agree to a few float32 ulp.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from .sample_noise import NOISE_KINDS, sigma_table

_MASK = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def _mulhilo(m: int, a: torch.Tensor):
    """(hi, lo) 32-bit halves of m * a using 16-bit limbs (int64 never overflows)."""
    mh, ml = m >> 16, m & 0xFFFF
    ah, al = a >> 16, a & 0xFFFF
    ll, lh, hl, hh = ml * al, ml * ah, mh * al, mh * ah
    mid = (ll >> 16) + (lh & 0xFFFF) + (hl & 0xFFFF)
    lo = ((mid & 0xFFFF) << 16) | (ll & 0xFFFF)
    hi = (hh + (lh >> 16) + (hl >> 16) + (mid >> 16)) & _MASK
    return hi, lo


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox-4x32-10 on int64 tensors holding uint32 values; returns four tensors."""
    for _ in range(10):
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
    return c0, c1, c2, c3


def _f32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32)


def _sym(words) -> torch.Tensor:
    return _f32(torch.stack([_f32(_f32(2 * (w >> 9) + 1) * 1.1920929e-07) - 1.0 for w in words], -1))


def unit_noise(words, kind: str) -> torch.Tensor:
    """Four words (each ``[...]`` int64) -> ``[..., 4]`` float32 unit noise
    (for ``"ssn"`` the symmetric u in (-1, 1) of :func:`split_value`)."""
    if kind == "ssn":
        return _sym(words)
    if kind == "uniform":
        return _f32(_sym(words).double() * 1.7320508075688772)
    out = []
    for p in range(2):
        a, b = words[2 * p], words[2 * p + 1]
        u1 = _f32(_f32(a >> 1) * 4.656612873077393e-10) + 2.3283064365386963e-10
        u1 = _f32(u1)
        u2 = _f32(b >> 8) * 5.960464477539063e-08
        r = torch.sqrt(-2.0 * torch.log(u1.double()))
        th = 2.0 * torch.pi * u2.double()
        out += [r * torch.cos(th), r * torch.sin(th)]
    return _f32(torch.stack(out, -1))


def split_value(x: torch.Tensor, sigma: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Splitting noise of ``x`` for split value ``s = lambda (1 + u)``, lambda =
    sqrt(3) sigma (Levine & Feizi 2021, Theorem 2, general case, §4.3): float32 ops in the kernel's order."""
    x, sigma, u = _f32(x), _f32(sigma), _f32(u)
    lam = sigma * torch.tensor(1.73205081, dtype=torch.float32)
    two = 2.0 * lam
    s = lam + lam * u
    m = torch.ceil((x - s) / two)
    up = torch.clamp(two * m + s, max=1.0)
    lo = torch.clamp((two * m + s) - two, min=0.0)
    return 0.5 * (up + lo)


def sample_noise(
    x: torch.Tensor,
    sigma: Union[float, torch.Tensor],
    samples: int,
    *,
    ids: Optional[torch.Tensor] = None,
    sample_start: int = 0,
    seed: int = 0,
    stream: int = 1,
    noise: str = "gaussian",
    antithetic: bool = False,
    clamp: Optional[tuple] = None,
    out_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Twin of :func:`smoothcert.ops.sample_noise` (same arguments and result)."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {sorted(NOISE_KINDS)}, got {noise!r}")
    x = x.float().cpu()
    B, S = x.shape[0], tuple(x.shape[1:])
    D = x[0].numel() if B else int(torch.tensor(S).prod()) if S else 1
    ids = torch.arange(B) if ids is None else ids.cpu().long()
    table = sigma_table(sigma, x).cpu()
    nq = (D + 3) // 4
    s = sample_start + torch.arange(samples)
    key = (s >> 1) if antithetic else s
    c0 = torch.arange(nq).view(1, 1, nq)
    c1 = key.view(1, samples, 1)
    c2 = ids.view(B, 1, 1)
    c0, c1, c2 = torch.broadcast_tensors(c0, c1, c2)
    c3 = torch.full_like(c0, stream)
    words = philox4x32_10(c0, c1, c2, c3, seed & _MASK, (seed >> 32) & _MASK)
    z = unit_noise(words, noise).reshape(B, samples, nq * 4)[..., :D]
    if antithetic:
        z = torch.where((s & 1).bool().view(1, samples, 1), -z, z)
    sig = table.view(table.shape[0], 1, table.shape[1])
    if noise == "ssn":
        out = split_value(x.reshape(B, 1, D), sig, z)
    else:
        out = x.reshape(B, 1, D) + sig * z
    if clamp is not None:
        out = out.clamp(min=clamp[0], max=clamp[1])
    out = out.reshape(B * samples, *S).to(out_dtype or torch.float32)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def sample_noise_pairs(x: torch.Tensor, sigma: Union[float, torch.Tensor], samples: int, *,
                       ids: Optional[torch.Tensor] = None, sample_start: int = 0, seed: int = 0, stream: int = 1,
                       noise: str = "gaussian", clamp: Optional[tuple] = None,
                       out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                       eps: Optional[torch.Tensor] = None):
    """Twin of :func:`smoothcert.ops.sample_noise_pairs`: ``(batch, dots)``, the dot
    products summed over elements in order (a float64 running sum, as the kernels).
    ``eps`` ``[B * samples, *S]``: unit noise to use instead of the twin's own (e.g. the
    kernel's, to compare the sums bit for bit)."""
    batch = sample_noise(x, sigma, samples, ids=ids, sample_start=sample_start, seed=seed, stream=stream,
                         noise=noise, clamp=clamp, out_dtype=out_dtype, channels_last=channels_last)
    B = x.shape[0]
    if eps is None:
        eps = sample_noise(torch.zeros_like(x.float().cpu()), 1.0, samples, ids=ids, sample_start=sample_start,
                           seed=seed, stream=stream, noise=noise)
    z = eps.float().cpu().reshape(B, samples // 2, 2, -1).double().numpy()
    prods = z[:, :, 0, :] * z[:, :, 1, :]
    dots = np.cumsum(prods, axis=-1)[..., -1] if prods.shape[-1] else np.zeros(prods.shape[:2])
    return batch, torch.from_numpy(np.ascontiguousarray(dots))


def sample_noise_backward(grad: torch.Tensor, x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, samples: int,
                          *, sample_start: int = 0, seed: int = 0, stream: int = 1, noise: str = "gaussian",
                          antithetic: bool = False, clamp: Optional[tuple] = None,
                          eps: Optional[torch.Tensor] = None):
    """Twin of ``smoothcert::sample_noise_backward``: ``(grad_x, grad_sigma)`` ``[B, D]`` float64,
    the sums over samples of ``g`` and ``g * eps`` where the clamp was inactive, in the
    kernels' order (chunks of 256 samples, then chunk by chunk; every product is exact
    in float64). Given the kernels' unit noise as ``eps``, the sums are theirs bit for
    bit; this twin's own eps is within a few float32 ulp of theirs (:func:`sample_noise`).

    Args:
        grad: ``[B * samples, *S]`` float32; x: ``[B, *S]`` float32; ids: ``[B]``;
        table: ``[1 | B, 1 | D]`` float32 sigma; eps: ``[B * samples, *S]`` unit noise to use
        (default: this module's); the rest as :func:`sample_noise`.
    """
    B = x.shape[0]
    D = x[0].numel() if B else 0
    x = x.float().cpu()
    if eps is None:
        eps = sample_noise(torch.zeros_like(x), 1.0, samples, ids=ids, sample_start=sample_start, seed=seed,
                           stream=stream, noise=noise, antithetic=antithetic)
    eps = eps.float().cpu().reshape(B, samples, D)
    g = grad.float().cpu().contiguous().view(B, samples, D)
    if clamp is not None:
        v = x.reshape(B, 1, D) + table.cpu().view(table.shape[0], 1, table.shape[1]) * eps  # float32, as the forward
        inside = torch.ones_like(v, dtype=torch.bool)
        if clamp[0] is not None:
            inside &= v >= clamp[0]
        if clamp[1] is not None:
            inside &= v <= clamp[1]
        g = g * inside
    gd, prod = g.double(), g.double() * eps.double()
    gx = torch.zeros(B, D, dtype=torch.float64)
    gs = torch.zeros(B, D, dtype=torch.float64)
    for c0 in range(0, samples, 256):
        ax = torch.zeros(B, D, dtype=torch.float64)
        as_ = torch.zeros(B, D, dtype=torch.float64)
        for j in range(c0, min(samples, c0 + 256)):  # sequential: the kernels' order
            ax += gd[:, j]
            as_ += prod[:, j]
        gx += ax
        gs += as_
    return gx, gs


def count_votes_(logits: torch.Tensor, samples: int, counts: torch.Tensor,
                 nonfinite: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Twin of :func:`smoothcert.ops.count_votes_` (argmax + per-input bincount)."""
    B, K = counts.shape
    if logits.shape[0] and K:
        winners = logits.argmax(dim=1).view(B, samples)
        counts += torch.nn.functional.one_hot(winners, K).sum(dim=1).to(counts.dtype)
        if nonfinite is not None:
            bad = ~torch.isfinite(logits).all(dim=1)
            nonfinite += bad.view(B, samples).sum(dim=1).to(nonfinite.dtype)
    return counts


def dssn_batch(x: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, levels: int, q: int, *,
               mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None,
               out_dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> torch.Tensor:
    """Twin of :func:`smoothcert.ops.dssn_batch`, in this library's integer form of Levine & Feizi's
    Corollary 1 (C-style division, ceiling by sign), float32 only for the final division."""
    x = x.cpu()
    B, S = x.shape[0], tuple(x.shape[1:])
    X = (x.double() * q).round().long() if x.is_floating_point() else x.long()
    X = X.reshape(B, 1, -1)
    offsets = offsets.cpu().long()
    if offsets.dim() == 1:
        offsets = offsets.view(1, -1)
    nb = offsets.shape[1]
    k = v.cpu().long().view(1, 1, -1) + offsets.view(offsets.shape[0], nb, 1)
    k = torch.where(k >= levels, k - levels, k)
    n = X - k
    m = torch.where(n >= 0, torch.div(n + levels - 1, levels, rounding_mode="floor"),
                    torch.div(n, levels, rounding_mode="trunc"))
    U = 2 * (m * levels + k) + 1
    total = torch.clamp(U, max=2 * q) + torch.clamp(U - 2 * levels, min=0)
    val = total.to(torch.float32) / torch.tensor(float(4 * q), dtype=torch.float32)
    val = val.reshape(B * nb, *S)
    if mean is not None:
        shape = (1, -1) + (1,) * (len(S) - 1)
        val = (val - mean.cpu().float().view(shape)) / std.cpu().float().view(shape)
    out = val.to(out_dtype or torch.float32)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def exact_distances(a: torch.Tensor, b: torch.Tensor, p: int = 2) -> torch.Tensor:
    """Twin of the kernels' canonical exact distance (``csrc/common/ball_math.h``) for
    row pairs ``a`` ``[P, D]``, ``b`` ``[P, D]`` float32: ``[P]`` float64, same bits."""
    P, D = a.shape
    t = a.cpu().double() - b.cpu().double()
    t = t * t if p == 2 else t.abs()
    t = torch.nn.functional.pad(t, (0, (-D) % 8)).view(P, -1, 8)  # padding adds +0.0: exact
    s = torch.zeros(P, 8, dtype=torch.float64)
    for k in range(t.shape[1]):  # lane j accumulates k = j (mod 8) in increasing k
        s = s + t[:, k]
    total = ((s[:, 0] + s[:, 1]) + (s[:, 2] + s[:, 3])) + ((s[:, 4] + s[:, 5]) + (s[:, 6] + s[:, 7]))
    # numpy's sqrt is the correctly rounded IEEE one, like the kernels'; torch's CPU
    # float64 sqrt can be one ulp off.
    return torch.from_numpy(np.sqrt(total.numpy())) if p == 2 else total


def ball_margin(queries: torch.Tensor, memory: torch.Tensor, radius: torch.Tensor, mem_class: torch.Tensor,
                query_class: torch.Tensor, *, p: int = 2):
    """Twin of :func:`smoothcert.ops.ball_margin`: every pair's exact distance, then the minima
    (ties to the lowest index). CPU tensors ``(margin, margin_idx, nearest, nearest_idx)``."""
    B, N, D = queries.shape[0], memory.shape[0], queries[0].numel() if queries.shape[0] else memory[0].numel()
    xq, xm = queries.reshape(B, D).float().cpu(), memory.reshape(N, D).float().cpu()
    inf = torch.full((B,), float("inf"), dtype=torch.float64)
    if B == 0 or N == 0:
        return inf, torch.full((B,), -1), inf.clone(), torch.full((B,), -1)
    d = exact_distances(xq.repeat_interleave(N, 0), xm.repeat(B, 1), p).view(B, N)
    margin = d - radius.cpu().double().view(1, N)
    other = mem_class.cpu().long().view(1, N) != query_class.cpu().long().view(B, 1)
    margin = torch.where(other, margin, inf.view(B, 1))

    def argmin(v):
        best = v.min(dim=1).values
        first = torch.where(v == best.view(B, 1), torch.arange(N).view(1, N), torch.full((1, N), N)).min(dim=1)
        idx = torch.where(torch.isinf(best) & (best > 0), torch.full_like(first.values, -1), first.values)
        return best, idx

    m, mi = argmin(margin)
    n, ni = argmin(d)
    return m, mi, n, ni


def pair_distances(rows: torch.Tensor, cols: torch.Tensor, reach_rows: torch.Tensor,
                   reach_cols: torch.Tensor) -> torch.Tensor:
    """Twin of :func:`smoothcert.ops.pair_distances`: every pair's exact distance, then
    +inf where it is not below the sum of the reaches. CPU ``[B, N]`` float64."""
    B, N = rows.shape[0], cols.shape[0]
    if B == 0 or N == 0:
        return torch.full((B, N), float("inf"), dtype=torch.float64)
    xq, xm = rows.reshape(B, -1).float().cpu(), cols.reshape(N, -1).float().cpu()
    d = exact_distances(xq.repeat_interleave(N, 0), xm.repeat(B, 1)).view(B, N)
    thr = reach_rows.cpu().double().view(B, 1) + reach_cols.cpu().double().view(1, N)
    return torch.where(d < thr, d, torch.full_like(d, float("inf")))
