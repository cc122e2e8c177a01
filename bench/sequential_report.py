"""Tables and plots of ``bench/sequential.py`` (summary.md and three PNGs under ``--out``)."""
from __future__ import annotations

import os

import numpy as np


def _acr(radius, correct):
    return float(np.mean(np.where(correct, radius, 0.0)))


def _interp_samples(acr, curve):
    """Fixed-n samples at which the fixed curve (n, ACR), increasing, reaches ``acr`` (None outside it)."""
    ns, acrs = zip(*curve)
    if acr < acrs[0] or acr > acrs[-1]:
        return None
    return float(np.interp(acr, acrs, ns))


def write_report(report, cs_for, marks, args, replay, fixed_results):
    from smoothcert.stats import gaussian_radius

    cs = cs_for("decide", 1.0)
    shares = ", ".join(f"{cs_for('estimate', t).levels[-1] / args.alpha:.2f} at tol {t}" for t in args.tols)

    lines = ["# Sequential certification against fixed n (MNIST LeNet)", "",
             f"{args.inputs} test images (every {args.skip}th), n0 = {args.n0}, alpha = {args.alpha}, n_max = "
             f"{args.n_max}, batch {args.batch}, {args.threads} CPU thread(s), channels_last; confidence sequence "
             f"`{cs.name}` on the checkpoints {cs.checkpoints.tolist()} (alpha spent {getattr(cs, 'spend', '')}; decide keeps "
             f"{cs.levels[-1] / args.alpha:.2f} of alpha for n_max, estimate 1 - 10 tol: {shares}).",
             "", "Command: `python bench/sequential.py --data-root DATA --out results/sequential "
             f"--threads {args.threads}` (resumable; `--report-only` rebuilds this file).", "",
             "Samples are estimation samples per input (n0 = "
             f"{args.n0} selection samples come on top of every row, fixed or sequential). Fixed n < n_max are the "
             "prefixes [0, n) of the same estimation stream (exactly the fixed-n runs at those n). Sequential rows "
             "for every rule are replayed on the recorded votes at the checkpoints; the timed runs go through the "
             "scheduler and the dataset runner and must agree with the replay.", ""]
    hist, curves, accs = {}, {}, {}
    for sigma, (trace, timed) in report.items():
        if not trace:
            continue
        B = len(trace)
        y = np.array([int(r["label"]) for r in trace])
        top = np.array([int(r["top"]) for r in trace])
        correct = top == y
        k_max = np.array([int(r[f"k{args.n_max}"]) for r in trace])
        unanimous = k_max == args.n_max
        fixed_time = float(sum(float(r["seconds"]) for r in trace))
        lines += [f"## sigma = {sigma} ({B} inputs; {int(unanimous.sum())} unanimous at n_max)", ""]
        # Fixed n.
        lines += ["| fixed n | ACR | ACR unanimous | ACR rest | cert. acc. at r = 2 sigma |", "|---|---|---|---|---|"]
        fixed_curve, fixed_rest = [], []
        radii_fixed = {}
        for n in args.fixed:
            rad = fixed_results(trace, n, args.alpha, sigma)
            radii_fixed[n] = rad
            acc2 = float(np.mean(correct & (rad >= 2 * sigma)))
            fixed_curve.append((n, _acr(rad, correct)))
            fixed_rest.append((n, _acr(rad[~unanimous], correct[~unanimous]) if (~unanimous).any() else 0.0))
            lines.append(f"| {n} | {_acr(rad, correct):.4f} | {_acr(rad[unanimous], correct[unanimous]) if unanimous.any() else 0:.4f} "
                         f"| {fixed_rest[-1][1]:.4f} | {acc2:.3f} |")
        lines += ["", f"Fixed n = {args.n_max}: {fixed_time:.0f} s wall time "
                  f"({fixed_time / (B * (args.n0 + args.n_max)) * 1e6:.2f} us per sample).", ""]
        # Decide.
        used, low = replay(trace, cs_for("decide", 2 * sigma), marks, "decide", sigma, 2 * sigma)
        rad_seq = np.asarray(gaussian_radius(low, sigma))
        acc_seq = float(np.mean(correct & (rad_seq >= 2 * sigma)))
        acc_fix = float(np.mean(correct & (radii_fixed[args.n_max] >= 2 * sigma)))
        hist[(sigma, "decide")] = used
        lines += [f"### decide r = {2 * sigma}", "",
                  f"- mean estimation samples {used.mean():.0f} vs {args.n_max}: **{args.n_max / used.mean():.1f}x fewer** "
                  f"({(args.n0 + args.n_max) / (args.n0 + used.mean()):.1f}x counting n0); median {np.median(used):.0f}, "
                  f"90th percentile {np.percentile(used, 90):.0f}, max {used.max()}",
                  f"- certified accuracy at r: sequential {acc_seq:.3f}, fixed n_max {acc_fix:.3f} "
                  f"(difference {100 * (acc_seq - acc_fix):+.1f} percentage points)"]
        lines += _timed_lines(timed.get("decide"), trace, used, rad_seq, fixed_time, args)
        # Estimate.
        lines += ["", "### estimate", "",
                  "| tol | mean samples | ACR | fixed n at equal ACR | ratio | unanimous: mean samples | rest: mean "
                  "samples | rest: ACR | rest: fixed n at equal ACR | rest: ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
        curves[sigma] = (fixed_curve, [])
        accs[(sigma, f"fixed n = {args.n_max}")] = (radii_fixed[args.n_max], correct)
        below = []
        for tol in args.tols:
            used, low = replay(trace, cs_for("estimate", tol), marks, "estimate", sigma, tol)
            rad = np.asarray(gaussian_radius(low, sigma))
            acr = _acr(rad, correct)
            at = _interp_samples(acr, fixed_curve)
            rest_acr = _acr(rad[~unanimous], correct[~unanimous]) if (~unanimous).any() else 0.0
            rest_at = _interp_samples(rest_acr, fixed_rest)
            rest_used = used[~unanimous].mean() if (~unanimous).any() else float("nan")
            curves[sigma][1].append((tol, used.mean(), acr))
            hist[(sigma, f"estimate {tol}")] = used
            if tol == 0.01:
                accs[(sigma, f"sequential estimate tol {tol}")] = (rad, correct)
            num = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
            ratio = f"{at / used.mean():.3f}x" if at else "outside the fixed curve"
            rest_ratio = f"{rest_at / rest_used:.3f}x" if rest_at else "outside the fixed curve"
            below.append(at is not None and at > used.mean())
            un_used = used[unanimous].mean() if unanimous.any() else None
            lines.append(f"| {tol} | {used.mean():.0f} | {acr:.4f} | {num(at)} | {ratio} | {num(un_used)} | "
                         f"{rest_used:.0f} | {rest_acr:.4f} | {num(rest_at)} | {rest_ratio} |")
        lines += ["", f"Sequential below the fixed-n curve (fewer samples at equal ACR) at "
                  f"{sum(below)} of {len(below)} tolerances.", ""]
        for name, run in timed.items():
            if name.startswith("estimate_"):
                tol = float(name.split("_", 1)[1])
                used, low = replay(trace, cs_for("estimate", tol), marks, "estimate", sigma, tol)
                lines += [f"Timed run, estimate tol = {tol}:"] + _timed_lines(run, trace, used,
                                                                             np.asarray(gaussian_radius(low, sigma)),
                                                                             fixed_time, args) + [""]
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    _plots(hist, curves, accs, args)


def _timed_lines(run, trace, used, rad_replay, fixed_time, args):
    if run is None:
        return ["- (no timed run yet)"]
    rows, summary, kind, target = run
    if len(rows) < len(trace):
        return [f"- timed run: {len(rows)}/{len(trace)} inputs so far"]
    by = {int(r["idx"]): r for r in rows}
    idx = [int(r["idx"]) for r in trace]
    n_t = np.array([int(by[i]["n"]) for i in idx])
    r_t = np.array([float(by[i]["radius"]) for i in idx])
    pred_ok = np.array([int(by[i]["predict"]) for i in idx])
    t = float(sum(float(by[i]["time"]) for i in idx))
    mism = int(np.sum((n_t != used) | (r_t != np.where(pred_ok >= 0, rad_replay, 0.0))))
    s_fixed = len(trace) * (args.n0 + args.n_max)
    s_seq = float(np.sum(n_t + args.n0))
    saved_s, saved_t = 1 - s_seq / s_fixed, 1 - t / fixed_time
    return [f"- timed run: {t:.0f} s against {fixed_time:.0f} s fixed; samples saved {saved_s:.1%}, wall time saved "
            f"{saved_t:.1%} (ratio {saved_t / saved_s if saved_s > 0 else float('nan'):.3f}); batch occupancy "
            f"{summary.get('batch_occupancy', float('nan')):.3f}; rows differing from the replay: {mism}"]


def _plots(hist, curves, accs, args):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    sigmas = sorted({s for s, _ in hist})
    fig, axes = plt.subplots(1, len(sigmas), figsize=(6 * len(sigmas), 4), squeeze=False)
    bins = np.logspace(np.log10(max(1, args.n0)), np.log10(args.n_max * 1.05), 30)
    for ax, s in zip(axes[0], sigmas):
        for (sig, name), used in hist.items():
            if sig == s and (name == "decide" or name == "estimate 0.01"):
                ax.hist(used, bins=bins, alpha=0.6, label=name)
        ax.set_xscale("log")
        _label(ax, s, "estimation samples per input", "inputs")
    _save(plt, fig, args, "samples_hist.png")
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (s, (fixed, seq)) in zip(axes[0], sorted(curves.items())):
        ax.plot([n for n, _ in fixed], [a for _, a in fixed], "o-", label="fixed n")
        ax.plot([u for _, u, _ in seq], [a for _, _, a in seq], "s-", label="sequential estimate")
        for tol, u, a in seq:
            ax.annotate(f"tol {tol}", (u, a), fontsize=7)
        _label(ax, s, "mean estimation samples per input", "ACR")
    _save(plt, fig, args, "samples_vs_acr.png")
    fig, axes = plt.subplots(1, len(sigmas), figsize=(6 * len(sigmas), 4), squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        for (sig, name), (rad, correct) in accs.items():
            if sig != s:
                continue
            grid = np.linspace(0, max(4 * s, 1e-9), 200)
            ax.plot(grid, [np.mean(correct & (rad >= g)) for g in grid], label=name)
        _label(ax, s, "radius", "certified accuracy")
    _save(plt, fig, args, "certified_accuracy.png")


def _label(ax, sigma, xlabel, ylabel):
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"sigma = {sigma}")
    ax.legend()


def _save(plt, fig, args, name):
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, name), dpi=120)
    plt.close(fig)
