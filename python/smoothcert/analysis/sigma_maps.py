"""Sensitivity maps of a per-element sigma (Tecot et al. §5.3): ``|sigma|`` as an image,
min-max normalised *globally* over all channels (so a colour bias stays visible),
per-channel panels for colour inputs, a histogram, and the border-vs-centre ratio.

Dark = small sigma = a feature the classifier is sensitive to; bright = large
sigma = a feature it ignores (MNIST: a bright border).
"""
from __future__ import annotations

import numpy as np
import torch


def normalized_map(sigma) -> np.ndarray:
    """``|sigma|`` ``[C, H, W]`` scaled to [0, 1] by its global min and max (a constant map gives 0.5)."""
    s = np.abs(torch.as_tensor(sigma).detach().cpu().double().numpy())
    if s.ndim != 3:
        raise ValueError(f"a sigma map needs shape [C, H, W], got {list(s.shape)}")
    lo, hi = float(s.min()), float(s.max())
    return np.full_like(s, 0.5) if hi <= lo else (s - lo) / (hi - lo)


def is_image(sigma) -> bool:
    """Whether ``sigma`` has the ``[C, H, W]`` shape (H, W >= 4) the maps and the ratio need."""
    shape = tuple(torch.as_tensor(sigma).shape)
    return len(shape) == 3 and min(shape[1:]) >= 4


def border_centre_ratio(sigma, width: int = 0) -> float:
    """Mean ``|sigma|`` over the frame of ``width`` pixels at the image edge divided by its mean
    over the central square (pixels at least a quarter of the side from every edge).
    ``width`` 0 means ``max(1, H // 7)`` (4 pixels for 28x28)."""
    s = np.abs(torch.as_tensor(sigma).detach().cpu().double().numpy())
    if s.ndim != 3 or min(s.shape[1:]) < 4:
        raise ValueError(f"border_centre_ratio needs [C, H, W] with H, W >= 4, got {list(s.shape)}")
    _, H, W = s.shape
    w = width or max(1, H // 7)
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    edge = np.minimum(np.minimum(rows, H - 1 - rows), np.minimum(cols, W - 1 - cols))
    border = edge < w
    centre = (np.minimum(rows, H - 1 - rows) >= H // 4) & (np.minimum(cols, W - 1 - cols) >= W // 4)
    return float(s[:, border].mean() / s[:, centre].mean())


def save_sigma_map(sigma, path: str, title: str = "") -> None:
    """Writes the globally normalised map (grey for one channel; an RGB image and one panel per
    channel for colour) and a histogram of ``|sigma|`` to a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = normalized_map(sigma)
    s = np.abs(torch.as_tensor(sigma).detach().cpu().double().numpy())
    C = m.shape[0]
    panels = 1 if C == 1 else C + 1
    fig = Figure(figsize=(2.6 * (panels + 1), 2.8))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, panels + 1, k + 1) for k in range(panels + 1)]
    if C == 1:
        im = axes[0].imshow(m[0], cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("|sigma| (global min-max)", fontsize="small")
    else:
        rgb = m[:3].transpose(1, 2, 0) if C >= 3 else np.repeat(m[:1].transpose(1, 2, 0), 3, axis=2)
        axes[0].imshow(rgb)
        axes[0].set_title("RGB (global min-max)", fontsize="small")
        for c in range(C):
            im = axes[c + 1].imshow(m[c], cmap="gray", vmin=0, vmax=1)
            axes[c + 1].set_title(f"channel {c}", fontsize="small")
    for ax in axes[:panels]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[panels - 1], fraction=0.046, pad=0.04,
                 label=f"{s.min():.3g} .. {s.max():.3g}")
    axes[panels].hist(s.ravel(), bins=50, color="0.3")
    axes[panels].set_xlabel("sigma (pixel units)", fontsize="small")
    axes[panels].set_title(f"border/centre {border_centre_ratio(s):.2f}", fontsize="small")
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
