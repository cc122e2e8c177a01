"""Training losses of the randomized-smoothing literature, one registered class per method.

Every loss is called as ``loss(model, x, y, sigma, noise) -> (loss, logits)``:

* ``model`` maps ``[N, *S]`` inputs in the raw input space to logits ``[N, K]``;
* ``x`` ``[B, *S]`` clean (possibly augmented) inputs, ``y`` ``[B]`` labels;
* ``sigma`` a float or a per-example tensor ``[B]`` (data-dependent and
  sample-wise smoothing train with one sigma per example);
* ``noise(x, m)`` returns ``[B * m, *S]`` = ``x[b] + sigma_b * eps_bj`` from the
  fused counter-based sampler, differentiable in ``x`` (row ``b * m + j``);
  the training loop keys it by (seed, example index, epoch), so calling it
  twice in one step returns the same draws;
* the returned ``logits`` ``[B', K]`` (with their labels ``y.repeat_interleave``
  where ``B' > B``) only feed the progress bar's accuracy.

Each class registers itself with :func:`~smoothcert.train.registry.register_loss` and
brings what the loop and ``smoothcert train`` ask of it (:class:`Loss`): its parameters
(:meth:`Loss.from_params`, :meth:`Loss.describe`), its command-line options
(:meth:`Loss.add_arguments`, :meth:`Loss.from_args`), its noise draws per step and the
training noises it is defined for. Papers: Cohen et al. 2019 (Gaussian augmentation),
Salman et al. 2019 (SmoothAdv: PGD on the smoothed soft classifier), Zhai et al. 2020
(MACER), Li et al. 2019 (stability training, as Levine & Feizi 2021 train DSSN's base
classifiers), Jeong & Shin 2020 (consistency regularisation).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .registry import LOSSES, register_loss

Noise = Callable[[Tensor, int], Tensor]
Sigma = Union[float, Tensor]


def _per_example(sigma: Sigma, B: int, like: Tensor) -> Tensor:
    """sigma as ``[B]`` float32 on ``like``'s device."""
    if isinstance(sigma, Tensor) and sigma.numel() > 1:
        return sigma.to(device=like.device, dtype=torch.float32).view(B)
    return torch.full((B,), float(sigma), device=like.device)


class Loss:
    """Base class of the registered losses (module docstring).

    Attributes:
        name: the registry key (set by ``register_loss``).
        HELP: the method's entry in ``smoothcert train --method``'s help.
        ANY_NOISE: defined for every training noise; otherwise for Gaussian noise only.
    """

    name: ClassVar[str] = ""
    HELP: ClassVar[str] = ""
    ANY_NOISE: ClassVar[bool] = False

    def __call__(self, model, x: Tensor, y: Tensor, sigma: Sigma, noise: Noise, **kwargs) -> Tuple[Tensor, Tensor]:
        raise NotImplementedError

    def samples_per_step(self) -> int:
        """Noise draws per example per step (the loop reserves this many counters)."""
        return 1

    def epoch_kwargs(self, epoch: int) -> Dict[str, Any]:
        """Keyword arguments of every call in (0-based) ``epoch`` of a stage."""
        return {}

    def check_noise(self, noise) -> None:
        """ValueError unless this loss is defined for the training noise class ``noise``."""
        if self.ANY_NOISE or noise.GAUSSIAN:
            return
        able = [cls.name for cls in LOSSES.classes() if cls.ANY_NOISE]
        raise ValueError(f"noise {noise.name!r} trains with the {' or '.join(able)} methods only; "
                         f"{self.describe()['method']} assumes Gaussian noise")

    def describe(self) -> Dict[str, Any]:
        """``{"method": name, **parameters}`` (tuples as lists): what checkpoints record and a
        resume compares; :func:`make_method` rebuilds the loss from it."""
        return {"method": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}}

    @classmethod
    def from_params(cls, **params) -> "Loss":
        """The loss with these parameters (lists read as the tuples :meth:`describe` turned them into)."""
        names = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        unknown = sorted(set(params) - set(names))
        if unknown:
            if not names:
                raise ValueError(f"{cls.name} takes no parameters, got {sorted(params)}")
            raise ValueError(f"{cls.name} has no parameter {', '.join(unknown)}; its parameters: {', '.join(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Adds the loss's own ``smoothcert train`` options (an argument group)."""

    @classmethod
    def options_given(cls, args: argparse.Namespace) -> List[str]:
        """The loss's own options set on the command line that another loss must refuse."""
        return []

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Loss":
        return cls.from_params()


def gaussian(model, x: Tensor, y: Tensor, sigma: Sigma, noise: Noise) -> Tuple[Tensor, Tensor]:
    """Gaussian data augmentation (Cohen et al. 2019): CE(f(x + sigma eps), y), one draw."""
    logits = model(noise(x, 1))
    return F.cross_entropy(logits, y), logits


@register_loss("gaussian")
@dataclass
class GaussianAugmentation(Loss):
    """Noise augmentation (Cohen et al. 2019), :func:`gaussian`; with another training noise
    (uniform, splitting, DSSN) it is that noise's augmentation."""

    HELP: ClassVar[str] = "noise augmentation (Cohen et al. 2019)"
    ANY_NOISE: ClassVar[bool] = True

    def __call__(self, model, x, y, sigma, noise) -> Tuple[Tensor, Tensor]:
        return gaussian(model, x, y, sigma, noise)


@register_loss("smoothadv")
@dataclass
class SmoothAdv(Loss):
    """SmoothAdv with PGD (Salman et al. 2019), as upstream ``PGD_L2``.

    m noise draws delta_j are fixed for the step; T PGD steps maximise
    -log(mean_j softmax(f(x' + delta_j))_y) over the L2 ball of radius
    ``epsilon`` around x (no random start, model in eval mode, gradient
    normalised per example, step 2 epsilon / T, clip to [lo, hi], project);
    then CE(f(x' + delta_j), y) averaged over j trains the model.

    Attributes:
        m: noise draws per example; steps: T; epsilon: the ball's radius (the
        training loop ramps it up linearly over ``warmup`` epochs).
        clip: valid input range of the raw input space.
    """

    HELP: ClassVar[str] = "PGD on the smoothed classifier (Salman et al. 2019)"

    m: int = 1
    steps: int = 2
    epsilon: float = 0.25
    warmup: int = 10
    clip: Tuple[float, float] = (0.0, 1.0)
    consistency: float = 0.0
    consistency_eta: float = 0.5

    def describe(self) -> Dict[str, Any]:
        out = super().describe()
        if not self.consistency:  # the description states recorded before the consistency terms existed
            out.pop("consistency")
            out.pop("consistency_eta")
        return out

    def epsilon_at(self, epoch: int) -> float:
        """Upstream's ramp: min(epsilon, (epoch + 1) * epsilon / warmup)."""
        if self.warmup <= 0:
            return self.epsilon
        return min(self.epsilon, (epoch + 1) * self.epsilon / self.warmup)

    def samples_per_step(self) -> int:
        return self.m

    def epoch_kwargs(self, epoch: int) -> Dict[str, Any]:
        return {"epsilon": self.epsilon_at(epoch)}

    @classmethod
    def from_params(cls, single_copy: bool = False, **params) -> "SmoothAdv":
        """``single_copy=True`` gives :class:`SingleCopySmoothAdv` (the description it records)."""
        return Loss.from_params.__func__(SingleCopySmoothAdv if single_copy else SmoothAdv, **params)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("smoothadv")
        g.add_argument("--m", type=int, default=SmoothAdv.m, help="noise draws per example")
        g.add_argument("--pgd-steps", type=int, default=SmoothAdv.steps, help="PGD steps T")
        g.add_argument("--epsilon", type=float, default=SmoothAdv.epsilon, help="L2 attack radius")
        g.add_argument("--warmup", type=int, default=SmoothAdv.warmup, help="epochs of linear epsilon warm-up")
        g.add_argument("--adv-consistency", type=float, default=SmoothAdv.consistency,
                       help="add Jeong & Shin's consistency terms with this lambda over the m noisy copies "
                       "(needs --m >= 2; 0: off)")
        g.add_argument("--adv-consistency-eta", type=float, default=SmoothAdv.consistency_eta,
                       help="eta of the entropy term with --adv-consistency")
        g.add_argument("--single-copy", action="store_true",
                       help="train on one of the m noisy adversarial copies (Salman et al.'s default without "
                       "multi-noise); the attack still uses all m")

    @classmethod
    def options_given(cls, args) -> List[str]:
        # The others have defaults that cannot tell "given" from "not given".
        return ["--single-copy"] if args.single_copy else []

    @classmethod
    def from_args(cls, args) -> "SmoothAdv":
        if args.adv_consistency and args.m < 2:
            raise ValueError("--adv-consistency compares the m noisy copies of each example: give --m 2 or more")
        extra = {"consistency": args.adv_consistency, "consistency_eta": args.adv_consistency_eta} \
            if args.adv_consistency else {}
        return cls.from_params(m=args.m, steps=args.pgd_steps, epsilon=args.epsilon, warmup=args.warmup,
                               single_copy=args.single_copy, **extra)

    def __call__(self, model, x, y, sigma, noise, *, epsilon: float = None) -> Tuple[Tensor, Tensor]:
        eps_ball = self.epsilon if epsilon is None else epsilon
        B, m = x.shape[0], self.m
        delta = noise(torch.zeros_like(x), m).detach()  # [B*m, *S]: sigma_b * eps_bj
        y_rep = y.repeat_interleave(m)
        x_adv = x.detach()
        if eps_ball > 0 and self.steps > 0:
            was_training = model.training
            model.eval()
            step = 2.0 * eps_ball / self.steps
            for _ in range(self.steps):
                x_adv = x_adv.clone().requires_grad_(True)
                logits = model(x_adv.repeat_interleave(m, dim=0) + delta)
                probs = F.softmax(logits, dim=1).view(B, m, -1).mean(dim=1)
                loss = F.nll_loss(torch.log(probs + 1e-20), y)
                (grad,) = torch.autograd.grad(loss, [x_adv])
                norm = grad.view(B, -1).norm(dim=1).clamp_min(1e-12).view(B, *([1] * (x.dim() - 1)))
                x_adv = x_adv.detach() + step * grad / norm
                x_adv = x_adv.clamp(*self.clip)
                diff = x_adv - x
                dnorm = diff.view(B, -1).norm(dim=1).view(B, *([1] * (x.dim() - 1)))
                x_adv = (x + diff * torch.clamp(eps_ball / dnorm.clamp_min(1e-12), max=1.0)).detach()
            model.train(was_training)
        logits = model(x_adv.repeat_interleave(m, dim=0) + delta)
        loss = F.cross_entropy(logits, y_rep)
        if self.consistency:  # Jeong & Shin's terms over the m noisy copies of x'
            loss = loss + consistency_terms(logits, B, m, self.consistency, self.consistency_eta)
        return loss, logits


@dataclass
class SingleCopySmoothAdv(SmoothAdv):
    """SmoothAdv whose training loss keeps only the first of the m noisy adversarial
    copies, CE(f(x' + delta_0), y) (this library's choice for sample-wise pretraining:
    Salman et al.'s default without their multi-noise flag); the attack still averages
    over all m draws. Registered as ``smoothadv`` with ``single_copy=True``.

    The parent's final forward runs on all B*m copies (so batch-norm statistics see
    every copy); the m-1 unused rows cost one extra forward, small beside the PGD
    steps. Returns logits ``[B, K]`` of the kept copies."""

    def __call__(self, model, x, y, sigma, noise, *, epsilon: float = None):
        _, logits = super().__call__(model, x, y, sigma, noise, epsilon=epsilon)
        kept = logits.view(x.shape[0], self.m, -1)[:, 0]
        return F.cross_entropy(kept, y), kept

    def describe(self) -> Dict[str, Any]:
        # Only here: the all-copies description stays what older states recorded.
        return {**super().describe(), "single_copy": True}


@register_loss("macer")
@dataclass
class Macer(Loss):
    """MACER (Zhai et al. 2020): CE of the soft smoothed classifier plus a hinge
    on its soft certified radius.

    With k draws, g = mean_j softmax(f(x + delta_j)) and g_beta the same with
    logits scaled by beta: L_C = -log(g_y + 1e-10); for examples where
    argmax g_beta = y, xi = Phi^-1(top1 g_beta) - Phi^-1(top2 g_beta) and
    L_R = sigma / 2 * max(gamma - xi, 0) (non-finite terms dropped, as
    upstream); L = mean(L_C + lbd * L_R).

    ``warmup``: epochs trained with lbd = 0 first (a warm start). Measured on a LeNet on MNIST
    at sigma 0.25 (k = 4, gamma 8, beta 16): from a random start lbd = 12 falls to chance
    accuracy within the first epoch at every learning rate tried (0.05 to 0.002), lbd = 0 and
    lbd = 1 train; a warm start alone does not rescue lbd = 12 (after three epochs at 97% noisy
    accuracy, the first epoch with the hinge fell to 14%), nor does computing the hinge in
    float64.
    """

    HELP: ClassVar[str] = "certified-radius hinge (Zhai et al. 2020)"

    k: int = 16
    lbd: float = 12.0
    gamma: float = 8.0
    beta: float = 16.0
    warmup: int = 0

    def samples_per_step(self) -> int:
        return self.k

    def epoch_kwargs(self, epoch: int) -> Dict[str, Any]:
        return {"lbd": 0.0 if epoch < self.warmup else self.lbd}

    def describe(self) -> Dict[str, Any]:
        out = super().describe()
        if not self.warmup:  # the description states recorded before the warm start existed
            del out["warmup"]
        return out

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("macer")
        g.add_argument("--k", type=int, default=Macer.k, help="noise draws per example")
        g.add_argument("--lbd", type=float, default=Macer.lbd, help="weight of the radius hinge")
        g.add_argument("--macer-gamma", type=float, default=Macer.gamma, help="hinge margin gamma")
        g.add_argument("--beta", type=float, default=Macer.beta, help="logit scale of the soft classifier")
        g.add_argument("--macer-warmup", type=int, default=Macer.warmup,
                       help="warm start: epochs trained with the hinge off (lbd = 0) before it starts")

    @classmethod
    def from_args(cls, args) -> "Macer":
        return cls.from_params(k=args.k, lbd=args.lbd, gamma=args.macer_gamma, beta=args.beta,
                               warmup=args.macer_warmup)

    def __call__(self, model, x, y, sigma, noise, *, lbd: Optional[float] = None) -> Tuple[Tensor, Tensor]:
        lbd = self.lbd if lbd is None else lbd
        B, k = x.shape[0], self.k
        logits = model(noise(x, k))  # [B*k, K]
        K = logits.shape[1]
        g = F.softmax(logits, dim=1).view(B, k, K).mean(dim=1)
        loss_c = -torch.log(g.gather(1, y.view(-1, 1)).squeeze(1) + 1e-10)
        g_beta = F.softmax(self.beta * logits, dim=1).view(B, k, K).mean(dim=1)
        top2 = g_beta.topk(2, dim=1)
        sig = _per_example(sigma, B, x)
        # Select the examples whose hinge is active and finite first, then
        # differentiate through those alone: a masked-out NaN would still
        # poison the gradient of a where().
        with torch.no_grad():
            xi = torch.special.ndtri(top2.values[:, 0]) - torch.special.ndtri(top2.values[:, 1])
            keep = (top2.indices[:, 0] == y) & torch.isfinite(xi) & (xi < self.gamma)
        p = top2.values[keep]
        hinge = sig[keep] / 2 * (self.gamma - (torch.special.ndtri(p[:, 0]) - torch.special.ndtri(p[:, 1])))
        return (loss_c.sum() + lbd * hinge.sum()) / B, logits


@register_loss("stability")
@dataclass
class Stability(Loss):
    """Stability training (Li et al. 2019, as Levine & Feizi 2021 train DSSN's base
    classifiers): two noisy copies, CE(P(x1), y) + weight * KL(P(x1) || P(x2)); defined for
    every training noise."""

    HELP: ClassVar[str] = "clean-vs-noisy KL (Li et al. 2019)"
    ANY_NOISE: ClassVar[bool] = True

    weight: float = 6.0

    def samples_per_step(self) -> int:
        return 2

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("stability")
        g.add_argument("--stability-weight", type=float, default=Stability.weight, help="weight of the KL term")

    @classmethod
    def from_args(cls, args) -> "Stability":
        return cls.from_params(weight=args.stability_weight)

    def __call__(self, model, x, y, sigma, noise) -> Tuple[Tensor, Tensor]:
        B = x.shape[0]
        logits = model(noise(x, 2)).view(B, 2, -1)
        l1, l2 = logits[:, 0], logits[:, 1]
        logp1, logp2 = F.log_softmax(l1, dim=1), F.log_softmax(l2, dim=1)
        kl = (logp1.exp() * (logp1 - logp2)).sum(dim=1).mean()
        return F.cross_entropy(l1, y) + self.weight * kl, l1


def consistency_terms(logits: Tensor, B: int, m: int, lbd: float, eta: float) -> Tensor:
    """Jeong & Shin's consistency regulariser (NeurIPS 2020, Sec. 3) of ``m`` noisy copies per
    example: ``lbd * mean_i KL(p_hat || p_i) + eta * H(p_hat)``, averaged over the ``B``
    examples, where ``p_i = softmax(logits of copy i)`` and ``p_hat = mean_i p_i``.

    Args:
        logits: ``[B * m, K]``, the m copies of each example consecutive.
    """
    logp = F.log_softmax(logits, dim=1).view(B, m, -1)  # [B, m, K]
    p_hat = logp.exp().mean(dim=1)  # [B, K]
    # log p_hat from the log-probabilities, so a vanishing p_hat stays finite.
    log_hat = torch.logsumexp(logp, dim=1) - math.log(m)
    kl = (p_hat.unsqueeze(1) * (log_hat.unsqueeze(1) - logp)).sum(dim=2).mean(dim=1)  # [B]
    entropy = -(p_hat * log_hat).sum(dim=1)  # [B]
    return (lbd * kl + eta * entropy).mean()


@register_loss("consistency")
@dataclass
class Consistency(Loss):
    """Consistency regularisation (Jeong & Shin, NeurIPS 2020, Sec. 3): m Gaussian copies
    x + delta_i of each example; L = mean_i CE(f(x + delta_i), y) + lbd * mean_i KL(p_hat ||
    p_i) + eta * H(p_hat), with p_i = softmax(f(x + delta_i)) and p_hat = mean_i p_i
    (:func:`consistency_terms`). SmoothAdv takes the same terms (``--adv-consistency``)."""

    HELP: ClassVar[str] = "noisy copies agree: KL to their mean plus entropy (Jeong & Shin 2020)"

    m: int = 2
    lbd: float = 10.0
    eta: float = 0.5

    def samples_per_step(self) -> int:
        return self.m

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("consistency")
        g.add_argument("--consistency-m", type=int, default=Consistency.m, help="noisy copies per example")
        g.add_argument("--consistency-lambda", type=float, default=Consistency.lbd,
                       help="weight lambda of the KL term")
        g.add_argument("--consistency-eta", type=float, default=Consistency.eta, help="weight eta of the entropy term")

    @classmethod
    def from_args(cls, args) -> "Consistency":
        if args.consistency_m < 1:
            raise ValueError(f"--consistency-m must be >= 1, got {args.consistency_m}")
        return cls.from_params(m=args.consistency_m, lbd=args.consistency_lambda, eta=args.consistency_eta)

    def __call__(self, model, x, y, sigma, noise) -> Tuple[Tensor, Tensor]:
        B, m = x.shape[0], self.m
        logits = model(noise(x, m))  # [B * m, K]
        ce = F.cross_entropy(logits, y.repeat_interleave(m))
        return ce + consistency_terms(logits, B, m, self.lbd, self.eta), logits


class CallableLoss(Loss):
    """A plain callable with the loss signature, not registered: one draw per step, Gaussian
    noise only, described by its type name and attributes."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def describe(self) -> Dict[str, Any]:
        params = getattr(self.fn, "__dict__", {})
        return {"method": type(self.fn).__name__,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}}


def make_method(name: str, **params) -> Loss:
    """The loss of a registered method name (:data:`~smoothcert.train.registry.LOSSES`);
    ``params`` are its fields (e.g. ``m``, ``steps``, ``epsilon`` for smoothadv, and
    ``single_copy=True`` for :class:`SingleCopySmoothAdv`)."""
    return LOSSES.get(name).from_params(**params)


def as_loss(method: Union[str, Callable]) -> Loss:
    """``method`` as a :class:`Loss`: a registered name (default parameters), a loss object,
    or a plain callable ``(model, x, y, sigma, noise) -> (loss, logits)``."""
    if isinstance(method, str):
        return make_method(method)
    if isinstance(method, Loss):
        return method
    if method is gaussian:
        return GaussianAugmentation()
    if not callable(method):
        raise TypeError(f"a training method is a registered name or a loss callable, got {type(method).__name__}")
    return CallableLoss(method)


def describe(method: Union[str, Callable]) -> Dict[str, Any]:
    """Plain description of a loss: ``{"method": name, **parameters}``."""
    return as_loss(method).describe()


def samples_per_step(method: Union[str, Callable]) -> int:
    """Noise draws per example per step (the training loop reserves this many counters)."""
    return as_loss(method).samples_per_step()


METHODS = LOSSES.names()  # the methods this module registers (others may register more)
