"""Fake (meta) implementations so torch.compile and FakeTensor tracing can run
through the smoothcert ops. Output shapes depend only on input shapes and int
arguments (no data-dependent sizes)."""
import torch


@torch.library.register_fake("smoothcert::sample_noise")
def _sample_noise_fake(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                       clamp_min, clamp_max, out_dtype, channels_last):
    torch._check(x.dim() >= 1, lambda: "sample_noise: x must have a batch dimension")
    torch._check(x.dtype == torch.float32, lambda: f"sample_noise: x must be float32, got {x.dtype}")
    torch._check(ids.dim() == 1 and ids.shape[0] == x.shape[0], lambda: "sample_noise: ids must be [B]")
    torch._check(sigma.dim() == 2, lambda: "sample_noise: sigma must be 2-D")
    torch._check(not channels_last or x.dim() == 4, lambda: "sample_noise: channels_last needs 4-D x")
    shape = (x.shape[0] * samples, *x.shape[1:])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=out_dtype or torch.float32, device=x.device, memory_format=fmt)


@torch.library.register_fake("smoothcert::sample_noise_into")
def _sample_noise_into_fake(x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                            clamp_min, clamp_max, channels_last, out):
    torch._check(x.dim() >= 1, lambda: "sample_noise_into: x must have a batch dimension")
    torch._check(tuple(out.shape) == (x.shape[0] * samples, *x.shape[1:]),
                 lambda: "sample_noise_into: out must be [B * samples, *S]")
    return None


@torch.library.register_fake("smoothcert::sample_noise_pairs")
def _sample_noise_pairs_fake(x, ids, sigma, samples, sample_start, seed, stream, kind, clamp_min, clamp_max,
                             out_dtype, channels_last):
    torch._check(kind in (0, 1), lambda: "sample_noise_pairs: kind must be 0 or 1")
    torch._check(samples % 2 == 0 and sample_start % 2 == 0,
                 lambda: "sample_noise_pairs: samples and sample_start must be even")
    batch = _sample_noise_fake(x, ids, sigma, samples, sample_start, seed, stream, kind, False, clamp_min,
                               clamp_max, out_dtype, channels_last)
    return batch, torch.empty((x.shape[0], samples // 2), dtype=torch.float64, device=x.device)


@torch.library.register_fake("smoothcert::sample_noise_backward")
def _sample_noise_backward_fake(grad, x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic,
                                clamp_min, clamp_max):
    torch._check(x.dim() >= 1 and x.dtype == torch.float32, lambda: "sample_noise_backward: x must be float32 [B, ...]")
    torch._check(grad.dtype == torch.float32, lambda: "sample_noise_backward: grad must be float32")
    torch._check(kind != 2, lambda: "sample_noise_backward: splitting noise is not differentiable in sigma")
    B = x.shape[0]
    D = x[0].numel() if B else 0
    return (torch.empty((B, D), dtype=torch.float64, device=x.device),
            torch.empty((B, D), dtype=torch.float64, device=x.device))


@torch.library.register_fake("smoothcert::count_votes_")
def _count_votes_fake(logits, samples, counts, nonfinite=None):
    torch._check(logits.dim() == 2, lambda: "count_votes_: logits must be 2-D")
    torch._check(counts.dim() == 2, lambda: "count_votes_: counts must be 2-D")
    return None


@torch.library.register_fake("smoothcert::dssn_batch")
def _dssn_batch_fake(x, v, offsets, levels, q, mean, std, out_dtype, channels_last):
    torch._check(x.dim() >= 1, lambda: "dssn_batch: x must have a batch dimension")
    torch._check(x.dtype in (torch.float32, torch.uint8), lambda: f"dssn_batch: x must be float32 or uint8, got {x.dtype}")
    torch._check(v.dim() == 1, lambda: "dssn_batch: v must be [D]")
    torch._check(offsets.dim() == 2, lambda: "dssn_batch: offsets must be [1 or B, nb]")
    torch._check(not channels_last or x.dim() == 4, lambda: "dssn_batch: channels_last needs 4-D x")
    shape = (x.shape[0] * offsets.shape[1], *x.shape[1:])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=out_dtype or torch.float32, device=x.device, memory_format=fmt)


@torch.library.register_fake("smoothcert::ball_margin")
def _ball_margin_fake(xq, xm, radius, mem_class, query_class, p):
    torch._check(xq.dim() == 2 and xm.dim() == 2, lambda: "ball_margin: queries [B, D] and memory [N, D]")
    torch._check(xq.shape[1] == xm.shape[1], lambda: "ball_margin: queries and memory differ in D")
    torch._check(p == 1 or p == 2, lambda: f"ball_margin: p must be 1 or 2, got {p}")
    B = xq.shape[0]
    return (xq.new_empty((B,), dtype=torch.float64), xq.new_empty((B,), dtype=torch.int64),
            xq.new_empty((B,), dtype=torch.float64), xq.new_empty((B,), dtype=torch.int64))


@torch.library.register_fake("smoothcert::pair_distances")
def _pair_distances_fake(xq, xm, reach_q, reach_m):
    torch._check(xq.dim() == 2 and xm.dim() == 2, lambda: "pair_distances: points [B, D] and [N, D]")
    torch._check(xq.shape[1] == xm.shape[1], lambda: "pair_distances: row and column points differ in D")
    return xq.new_empty((xq.shape[0], xm.shape[0]), dtype=torch.float64)
