"""The help a new user reads: every option explained, each default once, no internal names."""
import argparse
import re

import pytest

from smoothcert.cli.help_format import HelpFormatter, plain
from smoothcert.cli.main import build_parser


def _subparsers():
    parser = build_parser()
    return parser, parser._subparsers._group_actions[0].choices


def _helps():
    parser, subs = _subparsers()
    yield "smoothcert", parser.format_help()
    for name, sub in subs.items():
        yield name, sub.format_help()


@pytest.mark.parametrize("command", ["train", "certify", "fit-sigma", "analyze", "demo"])
def test_every_option_has_help(command):
    sub = _subparsers()[1][command]
    missing = [a.option_strings for a in sub._actions
               if a.help is None and not isinstance(a, argparse._HelpAction)]
    assert not missing, f"{command}: options without help: {missing}"


def test_defaults_printed_once_and_none_never():
    parser, subs = _subparsers()
    for name, sub in subs.items():
        fmt = sub._get_formatter()
        for action in sub._actions:
            if action.help is None:
                continue
            text = fmt._expand_help(action)
            assert "default: None" not in text and "default: False" not in text, (name, action.dest)
            assert text.lower().count("(default") <= 1, (name, action.dest, text)


def test_no_markup_or_internal_names_in_help():
    for name, text in _helps():
        assert "``" not in text and ":mod:" not in text and ":func:" not in text, name
        assert not re.search(r"seed[- ]?00\d", text), f"{name}: internal paper numbering in help"


def test_train_method_lists_and_explains_pretrain_finetune():
    parser, subs = _subparsers()
    assert "pretrain-finetune" in " ".join(parser.format_help().split())
    train = " ".join(subs["train"].format_help().split())
    assert "pretrain-finetune: uniform-random sigma" in train


def test_formatter_shows_informative_defaults_only():
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--a", type=int, default=0, help="zero is information")
    p.add_argument("--b", default=None, help="resolved later (100)")
    p.add_argument("--c", default=5, help="already says it (default 5)")
    flat = " ".join(p.format_help().split())
    assert "zero is information (default: 0)" in flat
    assert "resolved later (100) --c" in flat
    assert flat.count("default") == 2
    assert plain("The ``smoothcert`` command, :func:`~smoothcert.ops.sample_noise`") == \
        "The smoothcert command, smoothcert.ops.sample_noise"


def test_fit_sigma_states_its_unit(capsys):
    from smoothcert.cli.fit_sigma import _c0_units
    assert _c0_units([0.25], [0.3081]) == "0.25 (pixel sigma 0.07702)"
    assert _c0_units([0.1], None) == "0.1 (= pixel sigma)"
    flat = " ".join(_subparsers()[1]["fit-sigma"].format_help().split())
    assert "STANDARDIZED by default" in flat and "--units pixel" in flat


def test_demo_legend_counts_inputs_not_samples(tmp_path):
    import numpy as np

    from smoothcert.analysis.plot import plot_certified_accuracy
    tsv = tmp_path / "r.tsv"
    rows = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"] + [f"{i}\t0\t0\t0.5\t1\t0.1" for i in range(3)]
    tsv.write_text("\n".join(rows) + "\n")
    fig = plot_certified_accuracy([str(tsv)], str(tmp_path / "p.png"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels and all("3 inputs" in t and "n=" not in t for t in labels), labels
    assert np.isfinite(fig.axes[0].get_xlim()[1])


def test_fit_sigma_raw_state_dict_needs_normalize(tmp_path, capsys):
    """fit-sigma once wrapped a raw state_dict in the dataset's normalisation unasked (normalised twice
    for a network that normalises in its own forward)."""
    import torch

    from smoothcert.cli.main import main
    from smoothcert.models import build_model
    path = tmp_path / "sd.pt"
    torch.save(build_model("mlp", "digits")[1].state_dict(), path)
    code = main(["fit-sigma", "--model", str(path), "--arch", "mlp", "--dataset", "digits", "--out",
                 str(tmp_path / "fit")])
    err = capsys.readouterr().err
    assert code == 2 and "--normalize dataset|none|MEAN,STD" in err and not (tmp_path / "fit").exists()
