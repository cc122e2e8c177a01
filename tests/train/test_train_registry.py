"""Training on registered strategies: every loss rebuilds from its description, a loss or
sigma policy registered from outside trains through ``train()`` and ``smoothcert train``
without edits to the loop or the command line, ``derive_seed`` reproduces the legacy seed
formulas, and unknown names fail with a clear message."""
import contextlib
import os
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from smoothcert import cli, data, models
from smoothcert import train as training
from smoothcert.cli.main import build_parser
from smoothcert.train import losses, policies
from smoothcert.train.registry import LOSSES, RECIPES, SIGMA_POLICIES, TRAINING_NOISES, register_loss
from smoothcert.train.seeds import PURPOSES, derive_seed, generator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_DEFAULT = {"smoothadv": dict(m=3, steps=1, epsilon=0.5, warmup=2, clip=(-1.0, 2.0), consistency=3.0,
                             consistency_eta=0.2),
               "macer": dict(k=5, lbd=3.0, gamma=4.0, beta=2.0, warmup=2), "stability": dict(weight=1.5),
               "consistency": dict(m=3, lbd=5.0, eta=0.1)}


def toy_split(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    return data.Split(x, (x.flatten(1).mean(1) > 0.5).long(), 10, "toy")


def toy_model():
    torch.manual_seed(0)
    return models.build_model("mlp", "digits")


@contextlib.contextmanager
def registered(registry, name, cls):
    registry.register(name)(cls)
    try:
        yield cls
    finally:
        registry.unregister(name)


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("variant", ["defaults", "params"])
def test_every_loss_rebuilds_from_its_description(name, variant):
    params = NOT_DEFAULT.get(name, {}) if variant == "params" else {}
    loss = training.make_method(name, **params)
    desc = training.describe(loss)
    assert desc["method"] == name and loss.name == name
    rest = {k: v for k, v in desc.items() if k != "method"}
    again = training.make_method(desc["method"], **rest)
    assert type(again) is type(loss) and again == loss and training.describe(again) == desc


def test_single_copy_smoothadv_rebuilds_from_its_description():
    loss = training.make_method("smoothadv", m=2, single_copy=True)
    desc = training.describe(loss)
    assert desc["single_copy"] is True
    again = training.make_method(**{"name": desc.pop("method"), **desc})
    assert type(again) is training.SingleCopySmoothAdv and again == loss


def test_plain_callables_keep_their_description():
    assert training.describe(losses.gaussian) == {"method": "gaussian"}
    assert training.describe(lambda model, x, y, sigma, noise: None) == {"method": "function"}
    assert losses.samples_per_step(training.make_method("macer", k=7)) == 7


@dataclass
class ToyLoss(losses.Loss):
    """CE of scaled logits of one noisy copy."""

    HELP: ClassVar[str] = "scaled noise augmentation (a test's loss)"
    scale: float = 1.0

    def __call__(self, model, x, y, sigma, noise):
        logits = model(noise(x, 1)) * self.scale
        return F.cross_entropy(logits, y), logits

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument_group("toy").add_argument("--toy-scale", type=float, default=1.0, help="logit scale")

    @classmethod
    def from_args(cls, args):
        return cls.from_params(scale=args.toy_scale)


def test_a_registered_loss_trains_through_train_and_the_cli(tmp_path, capsys):
    with registered(LOSSES, "toy", ToyLoss):
        log = []
        training.train(toy_model(), toy_split(), "toy", 0.25, config=training.TrainConfig(epochs=1, batch_size=16),
                       progress=False, log=log)
        assert len(log) == 1
        train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
        assert "toy: scaled noise augmentation" in " ".join(train_help.split()) and "--toy-scale" in train_help
        ckpt = str(tmp_path / "toy.pt")
        assert cli.main(["train", "--method", "toy", "--toy-scale", "0.5", "--arch", "mlp", "--dataset", "digits",
                         "--sigma", "0.25", "--epochs", "1", "--max-train", "64", "--batch", "32", "--out", ckpt,
                         "--no-progress"]) == 0
        assert models.checkpoint_info(ckpt)["meta"]["method"] == {"method": "toy", "scale": 0.5}
        # a Gaussian-only loss refuses L1 noise like the built-in ones
        with pytest.raises(ValueError, match="gaussian or stability methods only; toy assumes Gaussian"):
            training.train(toy_model(), toy_split(), ToyLoss(), 0.25,
                           config=training.TrainConfig(epochs=1, noise="uniform"), progress=False)
    assert "toy" not in LOSSES
    with pytest.raises(SystemExit):
        cli.main(["train", "--method", "toy", "--arch", "mlp", "--dataset", "digits", "--out", "x.pt"])
    capsys.readouterr()


class HalfSigma(policies.SigmaPolicy):
    """Every example at half the given sigma (a test's policy)."""

    @classmethod
    def start(cls, cfg, sigma, N):
        policy = cls(cfg, N)
        policy.value = float(sigma) / 2
        return policy

    def sigma_of(self, ids):
        return self.value


def test_a_registered_sigma_policy_trains_through_train():
    seen = []

    def spy(model, x, y, sigma, noise):
        seen.append(sigma)
        return losses.gaussian(model, x, y, sigma, noise)

    with registered(SIGMA_POLICIES, "half", HalfSigma):
        cfg = training.TrainConfig(epochs=1, batch_size=16, sigma_mode="half")
        training.train(toy_model(), toy_split(), spy, 0.5, config=cfg, progress=False)
    assert seen == [0.25, 0.25]
    with pytest.raises(ValueError, match="sigma_mode must be one of"):
        cfg.check()


@pytest.mark.parametrize("seed", [0, 1, 7, 123456789, 2**40 + 3])
@pytest.mark.parametrize("epoch", [0, 1, 5, 300])
def test_derive_seed_is_the_legacy_formula(seed, epoch):
    assert derive_seed(seed, "epoch", epoch) == seed * 1_000_003 + epoch
    assert derive_seed(seed, "uniform-sigma", epoch) == (1 << 62) + seed * 1_000_003 + epoch
    for purpose in ("init", "noise", "sigma-opt"):
        assert derive_seed(seed, purpose) == seed
    legacy = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    assert torch.equal(torch.randperm(50, generator=generator(seed, "epoch", epoch)),
                       torch.randperm(50, generator=legacy))
    u = torch.rand(20, generator=torch.Generator().manual_seed((1 << 62) + seed * 1_000_003 + epoch),
                   dtype=torch.float64)
    assert torch.equal(training.uniform_sigma_table(20, 0.1, 0.5, seed, epoch), (0.1 + 0.4 * u).float())


def test_derive_seed_wraps_into_the_generator_range_and_refuses_bad_input():
    big = 2**64 - 1
    assert derive_seed(big, "epoch", 2) == (big * 1_000_003 + 2) % 2**64
    torch.Generator().manual_seed(derive_seed(big, "uniform-sigma", 9))  # seeds a generator
    assert sorted(PURPOSES) == sorted(["init", "epoch", "uniform-sigma", "noise", "sigma-opt"])
    for bad in (-1, 2**64, True, 1.5, "3"):
        with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\^64\)"):
            derive_seed(bad, "init")
    with pytest.raises(ValueError, match="unknown seed purpose 'shuffle'; known: init, epoch"):
        derive_seed(0, "shuffle", 1)
    with pytest.raises(ValueError, match=r"takes the keys \(epoch\), got 0"):
        derive_seed(0, "epoch")
    with pytest.raises(ValueError, match=r"takes the keys \(\), got 1"):
        derive_seed(0, "init", 1)
    with pytest.raises(ValueError, match="ints >= 0"):
        derive_seed(0, "epoch", -1)
    with pytest.raises(ValueError, match="seed must lie in"):
        training.TrainConfig(seed=-1).check()


def test_unknown_names_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown training method 'adversarial'; known: gaussian, smoothadv, "
                                         "macer, stability"):
        training.make_method("adversarial")
    with pytest.raises(ValueError, match=r"sigma_mode must be one of \('fixed', 'uniform', 'ddrs'\), got 'grid'"):
        training.TrainConfig(sigma_mode="grid").check()
    with pytest.raises(ValueError, match=r"noise must be one of \('gaussian', 'uniform', 'ssn', 'dssn'\)"):
        training.TrainConfig(noise="laplace").check()
    with pytest.raises(ValueError, match="unknown sigma mode 'grid'; known: fixed, uniform, ddrs"):
        SIGMA_POLICIES.get("grid")
    with pytest.raises(ValueError, match="smoothadv has no parameter eps; its parameters: m, steps"):
        training.make_method("smoothadv", eps=0.5)
    with pytest.raises(ValueError, match=r"gaussian takes no parameters, got \['m'\]"):
        training.make_method("gaussian", m=2)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--method", "adversarial", "--arch", "mlp", "--dataset", "digits",
                  "--out", str(tmp_path / "x.pt")])
    assert e.value.code == 2 and "invalid choice: 'adversarial'" in capsys.readouterr().err


def test_names_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="training method 'macer' is already registered"):
        register_loss("macer")(ToyLoss)
    with pytest.raises(ValueError, match="already a training recipe"):
        register_loss("pretrain-finetune")
    assert set(RECIPES.names()) >= {"pretrain-finetune"} and "dssn" in TRAINING_NOISES


def test_loop_and_cli_never_switch_on_strategy_names():
    names = set(LOSSES.names()) | set(SIGMA_POLICIES.names()) | set(TRAINING_NOISES.names()) | set(RECIPES.names())
    quoted = "|".join(re.escape(n) for n in names)
    compare = re.compile(rf"""(==|!=|\bin\s*[(\[{{])\s*["']({quoted})["']|["']({quoted})["']\s*(==|!=)""")
    for rel in ("python/smoothcert/train/loop.py", "python/smoothcert/cli/train.py"):
        text = open(os.path.join(ROOT, rel)).read()
        assert not compare.search(text), rel
        assert not re.search(r"isinstance\([^)]*(losses\.|Loss\b|SmoothAdv|Macer|Stability)", text), rel
        assert not re.search(r"(sigma_mode|\.noise|method)\s*(==|!=)", text), rel
