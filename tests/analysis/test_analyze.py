import json
import csv
import io

import numpy as np
import pytest

from smoothcert import analysis as analyze
from smoothcert.analysis import results, tables
from smoothcert.cli import analyze as analyze_cli

FULL_HEADER = ("idx\tlabel\tpredict\tradius\tcorrect\ttime\tcount_a\tn\tpa_lower\tsigma"
               "\tcertificate\tnorm")
# (label, predict, radius, correct): 3 certified-correct (0.5, 0.25, 1.1), 1 wrong, 2 abstains
FULL_ROWS = [(3, 3, 0.5, 1), (2, 2, 0.25, 1), (1, -1, 0.0, 0), (4, 5, 0.8, 0),
             (7, 7, 1.1, 1), (0, -1, 0.0, 0)]


def write_full(path, rows=FULL_ROWS, comment=True):
    lines = ["# written by hand", FULL_HEADER] if comment else [FULL_HEADER]
    for i, (lab, pred, rad, cor) in enumerate(rows):
        lines.append(f"{i}\t{lab}\t{pred}\t{rad!r}\t{cor}\t{0.1 * (i + 1)!r}\t90\t100"
                     f"\t0.8\t0.25\tfixed-sigma\tl2")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_cohen(path):
    # Cohen's certify.py: six columns, time as str(datetime.timedelta)
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                    "0\t1\t1\t0.75\t1\t0:00:01.500000\n"
                    "10\t2\t3\t0.4\t0\t0:00:02.000000\n"
                    "20\t5\t5\t0.3\t1\t0:00:01.000000\n"
                    "30\t6\t-1\t0.0\t0\t0:01:00\n")
    return path


def test_load_full_and_cohen(tmp_path):
    d = analyze.load_results(write_full(tmp_path / "full.tsv"))
    assert d["idx"].dtype == np.int64 and d["radius"].dtype == np.float64
    assert d["certificate"].dtype.kind == "U" and list(d["norm"]) == ["l2"] * 6
    np.testing.assert_array_equal(d["predict"], [3, 2, -1, 5, 7, -1])
    c = analyze.load_results(write_cohen(tmp_path / "cohen.tsv"))
    assert set(c) == set(results.REQUIRED)
    np.testing.assert_allclose(c["time"], [1.5, 2.0, 1.0, 60.0])


def test_header_only_file(tmp_path):
    p = tmp_path / "empty.tsv"
    p.write_text(FULL_HEADER + "\n")
    d = analyze.load_results(p)
    assert d["radius"].shape == (0,)
    s = analyze.summarize([p], radii=[0, 0.5])[0]
    assert s["rows"] == 0 and s["acr"] == 0.0
    np.testing.assert_array_equal(s["certified_accuracy"], [0.0, 0.0])
    assert "n/a" in analyze.to_markdown([s])


def test_metrics_hand_computed(tmp_path):
    d = analyze.load_results(write_full(tmp_path / "full.tsv"))
    acc = analyze.certified_accuracy(d["radius"], d["correct"], [0, 0.25, 0.5, 0.75, 1.1, 1.2])
    # radius exactly equal to the grid radius (0.25, 0.5, 1.1) counts as certified
    np.testing.assert_allclose(acc, [3 / 6, 3 / 6, 2 / 6, 1 / 6, 1 / 6, 0])
    assert analyze.average_certified_radius(d["radius"], d["correct"]) == pytest.approx(1.85 / 6)
    assert analyze.abstain_rate(d["predict"]) == pytest.approx(2 / 6)
    np.testing.assert_array_equal(analyze.certified_accuracy([], [], [0, 1]), [0, 0])


def test_default_radii():
    np.testing.assert_allclose(analyze.default_radii(1.1), np.arange(6) * 0.25)
    np.testing.assert_allclose(analyze.default_radii(3.0), np.arange(13) * 0.25)
    np.testing.assert_allclose(analyze.default_radii(10.0), np.arange(11) * 1.0)
    np.testing.assert_array_equal(analyze.default_radii(0.0), [0.0])
    assert len(analyze.default_radii(123.4)) <= 13


def test_summarize(tmp_path):
    full, cohen = write_full(tmp_path / "full.tsv"), write_cohen(tmp_path / "cohen.tsv")
    s_full, s_cohen = analyze.summarize([full, cohen])
    np.testing.assert_allclose(s_full["radii"], np.arange(6) * 0.25)  # max radius 1.1 -> 1.25
    assert s_full["label"] == "full" and s_full["rows"] == 6
    assert s_full["certificates"] == {"fixed-sigma"} and s_full["norm"] == "l2"
    assert s_full["clean_accuracy"] == pytest.approx(0.5)
    assert s_full["median_time"] == pytest.approx(0.35)
    assert s_cohen["certificate"] == analyze.COHEN_KIND and s_cohen["norm"] == "l2"
    np.testing.assert_allclose(s_cohen["certified_accuracy"], [0.5, 0.5, 0.25, 0.25, 0, 0])
    assert s_cohen["abstain_rate"] == 0.25
    labelled = analyze.summarize([full, cohen], labels=["a", "b"], radii=[0.3])
    assert [s["label"] for s in labelled] == ["a", "b"]
    assert labelled[1]["certified_accuracy"][0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="labels"):
        analyze.summarize([full], labels=["a", "b"])


def test_truncation_never_rounds_up(tmp_path):
    rows = [(1, 1, 1.0, 1)] * 2499 + [(1, 2, 1.0, 0)]  # 2499/2500 = 0.9996
    s = analyze.summarize([write_full(tmp_path / "big.tsv", rows)], radii=[0, 1.0, 1.5])
    md = analyze.to_markdown(s)
    assert "0.999" in md and "1.000" not in md
    row = list(csv.reader(io.StringIO(analyze.to_csv(s))))[1]
    assert row[4:7] == ["0.999", "0.999", "0.000"]
    assert row[7] == "0.999"  # ACR 0.9996 truncated too
    assert tables._frac3(2, 3) == "0.666" and tables._frac3(287, 1000) == "0.287"
    assert tables._trunc3(0.6669) == "0.666" and tables._trunc3(2.0) == "2.000"


def test_markdown_and_csv(tmp_path):
    s = analyze.summarize([write_full(tmp_path / "full.tsv"), write_cohen(tmp_path / "c.tsv")],
                          radii=[0, 0.5, 1.0])
    md = analyze.to_markdown(s, [0, 0.5, 1.0])
    lines = md.splitlines()
    assert lines[0] == ("| label | rows | certificate | norm | acc@0 | acc@0.5 | acc@1 | ACR "
                        "| abstain |")
    assert lines[2] == "| full | 6 | fixed-sigma | l2 | 0.500 | 0.333 | 0.166 | 0.308 | 0.333 |"
    assert lines[3].startswith("| c | 4 | fixed-sigma (Cohen TSV) | l2 | 0.500 | 0.250 | 0.000 |")
    assert "truncated" in md and "never up" in md
    parsed = list(csv.DictReader(io.StringIO(analyze.to_csv(s))))
    assert [r["label"] for r in parsed] == ["full", "c"]
    assert parsed[0]["acc@0.5"] == "0.333" and parsed[1]["ACR"] == "0.262"
    assert float(parsed[1]["abstain"]) == 0.25


def test_plot_png(tmp_path):
    full, cohen = write_full(tmp_path / "full.tsv"), write_cohen(tmp_path / "cohen.tsv")
    out = tmp_path / "curve.png"
    analyze.plot_certified_accuracy([full, cohen], out, labels=["x", "y"], title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024
    out2 = tmp_path / "curve2.png"
    analyze.plot_certified_accuracy(analyze.summarize([full]), out2)
    assert out2.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("body, match", [
    ("idx\tlabel\tpredict\tradius\tcorrect\n0\t1\t1\t0.5\t1\n", r"line 1: .*time"),
    ("# c\nidx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0.1\n1\t1\t1\t0.5\t1\n",
     r"line 4: expected 6"),
    ("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0.1\n1\t1\t1\tabc\t1\t0.1\n",
     r"line 3: column 'radius'.*'abc'"),
    ("", r"no header"),
])
def test_malformed(tmp_path, body, match):
    p = tmp_path / "bad.tsv"
    p.write_text(body)
    with pytest.raises(ValueError, match=match) as e:
        analyze.load_results(p)
    assert "bad.tsv" in str(e.value)


def test_main_end_to_end(tmp_path, capsys):
    full, cohen = write_full(tmp_path / "full.tsv"), write_cohen(tmp_path / "cohen.tsv")
    table, png = tmp_path / "t.csv", tmp_path / "p.png"
    rc = analyze_cli.main([str(full), str(cohen), "--radii", "0", "0.5", "--labels", "F", "C",
                       "--format", "csv", "--out-table", str(table), "--plot", str(png)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed == table.read_text()
    rows = list(csv.DictReader(io.StringIO(printed)))
    assert [r["label"] for r in rows] == ["F", "C"] and rows[0]["acc@0.5"] == "0.333"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert analyze_cli.main([str(full)]) == 0
    out = capsys.readouterr().out
    assert "| acc@1.25 |" in out and "| full | 6 |" in out
    bad = tmp_path / "bad.tsv"
    bad.write_text("idx\n")
    assert analyze_cli.main([str(bad)]) == 2
    assert "bad.tsv" in capsys.readouterr().err


def test_best_over_files_envelope(tmp_path, capsys):
    # a certifies (0.5, 0.25, 1.1) correct; b certifies only small radii but more of them
    a = write_full(tmp_path / "a.tsv")
    b_rows = [(3, 3, 0.3, 1), (2, 2, 0.3, 1), (1, 1, 0.3, 1), (4, 4, 0.1, 1), (7, 7, 0.0, 1), (0, -1, 0.0, 0)]
    b = write_full(tmp_path / "b.tsv", rows=b_rows)
    rc = analyze_cli.main([str(a), str(b), "--radii", "0", "0.3", "1", "--format", "csv",
                       "--best", "best=a,b", "--best", "only_a=a"])
    assert rc == 0
    rows = {r["label"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    # acc@0: a 3/6, b 5/6; acc@0.3: a 2/6 (0.5, 1.1), b 3/6; acc@1: a 1/6, b 0
    assert [rows["best"][f"acc@{r}"] for r in ("0", "0.3", "1")] == ["0.833", "0.500", "0.166"]
    assert rows["only_a"]["acc@0.3"] == rows["a"]["acc@0.3"] == "0.333"
    assert rows["best"]["ACR"] == "-"
    short = write_full(tmp_path / "short.tsv", rows=FULL_ROWS[:3])
    assert analyze_cli.main([str(a), str(short), "--best", "x=a,short"]) == 2
    assert "different numbers of rows" in capsys.readouterr().err
    assert analyze_cli.main([str(a), "--best", "x=nope"]) == 2
    assert analyze_cli.main([str(a), "--best", "x"]) == 2


def test_column_types_come_from_the_sidecar_else_from_the_values(tmp_path):
    from smoothcert.analysis.results import load_results

    path = tmp_path / "r.tsv"
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\tnew_count\tnew_level\tnew_name\n"
                    "0\t1\t1\t0.5\t1\t0.1\t7\t0.25\tx\n3\t2\t-1\t0.0\t0\t0.1\t9\t1\ty\n")
    d = load_results(path)  # no sidecar: the narrowest type every value parses as
    assert d["new_count"].dtype.kind == "i" and d["new_level"].dtype.kind == "f" and d["new_name"].dtype.kind == "U"
    with open(str(path) + ".json", "w") as f:
        json.dump({"columns": {"new_count": "str", "new_level": "float", "new_name": "str"}}, f)
    d = load_results(path)  # a family's declaration wins over the values
    assert d["new_count"].dtype.kind == "U" and list(d["new_level"]) == [0.25, 1.0]
