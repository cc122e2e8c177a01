"""Per-element (anisotropic) sigma against the scalar path, and the sigma optimiser's step
against the same step in plain PyTorch (this library's fused kernels; Tecot et al. prescribe
none), as ratios taken in one run.

(1) Noise path. The same model and forward batch, n noisy samples per input, votes counted:
      (a) ``Smooth`` with one scalar sigma (the sampler reads a [1, 1] table);
      (b) ``AnisotropicSmooth`` with a full per-element sigma ([1, D] table).
    Also the fused sampler alone (no model) with a [1, 1] and a [1, D] table.
    Reports inputs/s and ``per_element_over_scalar`` (throughput ratio; target >= 0.95).

(2) Optimiser step (one minibatch of Alg. 1: noise, model, masked O_CA surrogate, backward,
    Adam), for the same inputs, model and n0:
      (a) smoothcert: the fused sampler; its backward regenerates the noise from its counters;
      (b) plain PyTorch: ``z = torch.randn(B, n0, D)`` kept for autograd, ``x + sigma * z``.
    Reports seconds per step and ``plain_over_fused`` (> 1: the fused step is faster), and
    the peak extra memory the plain step holds for z (B * n0 * D floats).

    python bench/anisotropic.py --device cpu|cuda [--quick] [--json out.json]
"""
from __future__ import annotations

import math

import torch

from timing import bench_args, sync, timed_interleaved, write_json
from smoothcert import models, ops
from smoothcert.certify import AnisotropicSmooth, Smooth
from smoothcert.sigma import FitConfig, SigmaParameter, surrogate


def noise_case(name, arch, dataset, B, n, batch, device, repeat):
    torch.manual_seed(0)
    model = models.build_model(arch, dataset).to(device).eval()
    shape = (1, 28, 28) if dataset != "cifar10" else (3, 32, 32)
    X = torch.rand(B, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    sigma = (torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 0.4 + 0.1)
    scalar = Smooth(model, 10, 0.25, seed=3)
    aniso = AnisotropicSmooth(model, 10, sigma, seed=3)
    ids = torch.arange(B, device=device)
    t1 = torch.full((1, 1), 0.25, device=device)
    tD = sigma.reshape(1, -1).to(device)
    per = max(1, batch // B)

    def run(fam, table):
        return lambda: fam.sampler(ops.ESTIMATION_STREAM, batch).draw(X, ids, table, n)

    def sampler(table):
        return lambda: ops.sample_noise_table(X, ids, table, per, sample_start=0, seed=3, stream=1)

    ts, ta, ks, ka = timed_interleaved([run(scalar, t1), run(aniso, tD), sampler(t1), sampler(tD)], device, repeat)
    return {"case": name, "inputs": B, "n": n, "batch": batch, "scalar_inputs_per_s": B / ts,
            "per_element_inputs_per_s": B / ta, "per_element_over_scalar": ts / ta,
            "sampler_rows_per_s_scalar": B * per / ks, "sampler_rows_per_s_per_element": B * per / ka,
            "sampler_per_element_over_scalar": ks / ka}


class _Confident(torch.nn.Module):
    """An untrained network whose logits favour class 0 by a margin, so that every input
    qualifies for the objective (the mask is all true) and both steps do the same work."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out + torch.nn.functional.one_hot(torch.zeros_like(out[:, 0], dtype=torch.long), out.shape[1]) * 20


def optimiser_case(name, arch, dataset, B, n0, device, repeat):
    torch.manual_seed(0)
    model = _Confident(models.build_model(arch, dataset)).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    shape = (1, 28, 28) if dataset != "cifar10" else (3, 32, 32)
    D = math.prod(shape)
    X = torch.rand(B, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        y = model(X).argmax(1)
    ids = torch.arange(B, device=device)
    cfg = FitConfig(c0=0.25, units="pixel")
    fused_p = SigmaParameter(shape, cfg).to(device)
    plain_p = SigmaParameter(shape, cfg).to(device)
    fused_opt = torch.optim.Adam(fused_p.parameters(), lr=1e-3)
    plain_opt = torch.optim.Adam(plain_p.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(4)

    def fused():
        out = surrogate(model, X, y, ids, fused_p(), n0, seed=5, sample_start=0)
        fused_opt.zero_grad(set_to_none=True)
        out.loss.backward()
        fused_opt.step()

    def plain():
        sigma = plain_p()
        z = torch.randn(B, n0, D, generator=gen, device=device)
        noisy = (X.view(B, 1, D) + sigma.view(1, 1, D) * z).view(B * n0, *shape)
        logits = model(noisy).float()
        logp = torch.log_softmax(logits, 1).view(B, n0, -1)
        p_hat = torch.exp(torch.logsumexp(logp.gather(2, y.view(B, 1, 1).expand(B, n0, 1)).squeeze(2), 1)
                          - math.log(n0))
        votes = torch.zeros(B, logits.shape[1], dtype=torch.long, device=device)
        votes.scatter_add_(1, logits.argmax(1).view(B, n0), torch.ones(B, n0, dtype=torch.long, device=device))
        mask = (votes.argmax(1) == y) & (p_hat.detach() >= 0.5)
        o = torch.log(sigma + 1e-9).sum() + D * torch.log(
            torch.special.ndtri(p_hat.clamp(1e-7, 1 - 1e-7)).clamp_min(0) + 1e-9)
        loss = -(o * mask).sum() / mask.sum().clamp_min(1)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    tf, tp = timed_interleaved([fused, plain], device, repeat)
    return {"case": name, "inputs": B, "n0": n0, "fused_s_per_step": tf, "plain_s_per_step": tp,
            "plain_over_fused": tp / tf, "plain_z_bytes": B * n0 * D * 4}


def main() -> int:
    args = bench_args(__doc__)
    dev = args.device
    if args.quick:
        noise = [noise_case("lenet-mnist", "lenet", "mnist", 4, 200, 400, dev, 1)]
        opt = [optimiser_case("lenet-mnist", "lenet", "mnist", 8, 4, dev, 1)]
    else:
        big = dev == "cuda"
        noise = [noise_case("lenet-mnist", "lenet", "mnist", 20, 10000 if big else 2000, 10000 if big else 1000,
                            dev, args.repeat),
                 noise_case("resnet20-cifar10", "resnet20", "cifar10", 4, 2000 if big else 200,
                            1000 if big else 200, dev, args.repeat)]
        opt = [optimiser_case("lenet-mnist", "lenet", "mnist", 128, 32, dev, args.repeat),
               optimiser_case("resnet20-cifar10", "resnet20", "cifar10", 32 if big else 8, 32, dev, args.repeat)]
    for r in noise:
        print(f"{r['case']:>18}: per-element/scalar throughput {r['per_element_over_scalar']:.3f} "
              f"(sampler alone {r['sampler_per_element_over_scalar']:.3f})")
    for r in opt:
        print(f"{r['case']:>18}: optimiser step fused {r['fused_s_per_step'] * 1e3:.1f} ms, plain "
              f"{r['plain_s_per_step'] * 1e3:.1f} ms, plain/fused {r['plain_over_fused']:.2f}")
    if args.json:
        write_json(args.json, dev, {"noise_path": noise, "optimiser_step": opt})
    sync(dev)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
