"""Statistics against hand-computed and textbook values, the paper's table reproduced from
judgements, export files, the chart, and the `annotate` CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest
from PIL import Image

from steerseg_core.annotation import (
    cohen_kappa,
    fleiss_kappa,
    import_segmentation_scores,
    store,
    study_statistics,
    wilson_interval,
)
from steerseg_core.annotation.export import export_study
from steerseg_core.annotation.stats import consensus, fleiss_kappa_labels
from steerseg_core.cli import main

from .test_annotation_helpers import make_reasonvos


def test_wilson_interval_hand_values():
    # 115/132 (the paper): p = .8712, centre = (p + z²/2n)/(1 + z²/n) = .86071, half-width = .05730.
    lo, hi = wilson_interval(115, 132)
    assert (lo, hi) == (pytest.approx(0.80341, abs=2e-5), pytest.approx(0.91801, abs=2e-5))
    # k = 0: [0, z²/(n + z²)]; k = n: [n/(n + z²), 1].
    assert wilson_interval(0, 10) == (0.0, pytest.approx(3.841459 / 13.841459, abs=1e-6))
    assert wilson_interval(10, 10) == (pytest.approx(10 / 13.841459, abs=1e-6), pytest.approx(1.0))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    scipy_stats = pytest.importorskip("scipy.stats")
    ci = scipy_stats.binomtest(115, 132).proportion_ci(method="wilson")
    assert (lo, hi) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


def _pairs(tt: int, tf: int, ft: int, ff: int) -> tuple[list[str], list[str]]:
    a = ["True"] * (tt + tf) + ["False"] * (ft + ff)
    b = ["True"] * tt + ["False"] * tf + ["True"] * ft + ["False"] * ff
    return a, b


@pytest.mark.parametrize("cells,kappa", [
    ((20, 5, 10, 15), 0.4),  # Wikipedia: po = .7, pe = .5
    ((45, 15, 25, 15), 0.06 / 0.46),  # po = .6, pe = .54
    ((25, 35, 5, 35), 0.14 / 0.54),  # same po, different kappa
])
def test_cohen_kappa_textbook_values(cells, kappa):
    assert cohen_kappa(*_pairs(*cells)) == pytest.approx(kappa, abs=1e-12)


def test_cohen_kappa_edge_cases():
    assert cohen_kappa(["True", "Skip"], ["True", "Skip"]) == 1.0
    assert math.isnan(cohen_kappa(["True"] * 3, ["True"] * 3))  # undefined: pe = 1
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa(["True"], [])


def test_fleiss_kappa_wikipedia_example():
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)  # P̄ = .37802, P̄e = .21296
    with pytest.raises(ValueError):
        fleiss_kappa([[1, 1], [3, 0]])


def test_fleiss_kappa_labels_hand_value():
    ratings = [["True"] * 3, ["True", "True", "False"], ["False"] * 3, ["True", "False", "Skip"]]
    # P̄ = (1 + 1/3 + 1 + 0)/4 = 7/12, P̄e = (6² + 5² + 1²)/12² = 31/72 → κ = 11/41.
    assert fleiss_kappa_labels(ratings) == pytest.approx(11 / 41, abs=1e-12)


def test_consensus():
    assert consensus(["True", "True", "False"]) == "True"
    assert consensus(["True", "False", "Skip"]) is None
    assert consensus(["Skip", "Skip"]) == "Skip"
    assert consensus(["Skip", "False"]) == "False"
    assert consensus([]) is None


def _bare_study(db, n: int, name: str = "paper", segmentation_question: bool = False) -> int:
    samples = [{"video_id": f"video{i:03d}", "exp_id": "0", "clip_ref": f"/clips/{i}", "expression": f"e{i}",
                "reasoning": "r", "attributes": ("a", "b")} for i in range(n)]
    return store.insert_study(db, {"name": name, "seed": 0, "n_requested": n, "pool_size": 458,
                                   "segmentation_question": segmentation_question}, samples)


def test_the_papers_table_from_judgements_and_an_evaluation_run(tmp_path):
    """132 items, 115 True / 17 False, J&F ≥ 0.5 for 64 of the correct and 2 of the incorrect."""
    db = tmp_path / "a.db"
    sid = _bare_study(db, 132)
    for pos in range(132):
        store.record_judgement(db, sid, pos, "annotator-1", "True" if pos < 115 else "False")
    scores = tmp_path / "jf.csv"
    accurate = set(range(64)) | {115, 116}
    scores.write_text("sequence,J&F-Mean\n" + "".join(
        f"video{i:03d}_0,{0.8 if i in accurate else 0.2}\n" for i in range(132)))
    assert import_segmentation_scores(db, sid, scores) == 132
    stats = study_statistics(db, sid)
    c = stats.consensus
    assert (c.n_true, c.n_false, c.n_skip) == (115, 17, 0)
    assert round(100 * c.accuracy, 1) == 87.1
    assert stats.cross_table.rate("True") == (64, 115, pytest.approx(64 / 115))
    assert round(100 * stats.cross_table.rate("True")[2], 1) == 55.7
    assert stats.cross_table.rate("False")[:2] == (2, 17)
    assert stats.cross_table.seg_source == "evaluation run (J&F ≥ 0.5)"
    assert stats.summary_lines() == [
        "115/132 correct (87.1 %, 95 % CI 80.3 %–91.8 %); 0 skipped; 0 without a verdict",
        "segmentation accurate for 64 of 115 correct cases (55.7 %)",
        "segmentation accurate for 2 of 17 incorrect cases (11.8 %)"]
    # A stricter threshold moves every 0.8 below it.
    strict = study_statistics(db, sid, jf_threshold=0.9)
    assert strict.cross_table.rate("True")[:2] == (0, 115)


def test_three_annotators_agreement_consensus_and_segmentation_question(tmp_path):
    db = tmp_path / "a.db"
    sid = _bare_study(db, 5, segmentation_question=True)
    labels = {"A": ["True", "True", "False", "True"], "B": ["True", "True", "False", "False"],
              "C": ["True", "False", "False", "Skip"]}
    for who, row in labels.items():
        for pos, label in enumerate(row):
            store.record_judgement(db, sid, pos, who, label)
    store.record_judgement(db, sid, 4, "A", "Skip")  # item 5: only A, so not in Fleiss' set
    for pos, seg in enumerate(["True", "False", "True", "True"]):
        store.record_judgement(db, sid, pos, "A", seg, question="segmentation")
    stats = study_statistics(db, sid)
    kappas = {(p.a, p.b): (p.kappa, p.n_items, p.percent_agreement) for p in stats.pairs}
    # Hand-computed: A/B po = 3/4, pe = 1/2; A/C po = 1/2, pe = 5/16; B/C po = 1/2, pe = 3/8.
    assert kappas[("A", "B")] == (pytest.approx(0.5), 4, 0.75)
    assert kappas[("A", "C")] == (pytest.approx(3 / 11), 4, 0.5)
    assert kappas[("B", "C")] == (pytest.approx(0.2), 4, 0.5)
    assert (stats.fleiss_kappa, stats.fleiss_items) == (pytest.approx(11 / 41), 4)
    by = {r.who: r for r in stats.annotators}
    assert (by["A"].n_true, by["A"].n_false, by["A"].n_skip, by["A"].accuracy) == (3, 1, 1, 0.75)
    assert (by["C"].n_labelled, by["C"].accuracy) == (4, pytest.approx(1 / 3))
    # Consensus: T, T, F, tie (no verdict), Skip.
    c = stats.consensus
    assert (c.n_true, c.n_false, c.n_skip, c.n_labelled) == (2, 1, 1, 4)
    # Segmentation from the second question: correct items 1 (accurate), 2 (inaccurate); item 3 accurate.
    assert stats.cross_table.seg_source == "annotators"
    assert stats.cross_table.cells == {"True": {"accurate": 1, "inaccurate": 1, "unknown": 0},
                                       "False": {"accurate": 1, "inaccurate": 0, "unknown": 0}}
    assert [r.who for r in stats.segmentation_annotators] == ["A"]


def test_export_files(tmp_path):
    db = tmp_path / "a.db"
    sid = _bare_study(db, 4)
    for who in ("ann", "bob"):
        for pos in range(4):
            store.record_judgement(db, sid, pos, who, "True" if pos % 2 else "False", note="n" if pos == 1 else "")
    store.record_judgement(db, sid, 0, "ann", "True")  # a revision shows in the history
    paths = export_study(db, sid, tmp_path / "out")
    assert {p.name for p in paths.values()} == {f"study-{sid}-judgements.csv", f"study-{sid}-judgements.json",
                                                f"study-{sid}-stats.json", f"study-{sid}-stats.csv",
                                                f"study-{sid}-chart.png"}
    rows = list(csv.DictReader(paths["judgements_csv"].open()))
    assert len(rows) == 8 and rows[0]["item"] == "1" and rows[0]["annotator"] == "ann"
    assert (rows[0]["label"], rows[0]["revision"], rows[0]["attributes"]) == ("True", "2", "a, b")
    data = json.loads(paths["judgements_json"].read_text())
    assert len(data["samples"]) == 4 and len(data["judgements"]) == 8 and len(data["history"]) == 9
    st = json.loads(paths["stats_json"].read_text())
    assert st["pairs"][0]["kappa"] == pytest.approx(0.5)  # ann TTFT... vs bob: 3 of 4 agree, pe = .5
    # Consensus after ann's revision (T T F T) and bob's (F T F T): a tie, T, F, T.
    assert st["summary"][0].startswith("2/3 correct (66.7 %") and st["summary"][0].endswith("1 without a verdict")
    text = paths["stats_csv"].read_text()
    assert "cohen,ann,bob,4,0.75,0.5" in text and "cross_table,True,0,0,2," in text
    with Image.open(paths["chart_png"]) as im:
        assert im.format == "PNG" and im.width >= 600


def test_cli_create_import_scores_stats_export(tmp_path, data_dir, capsys):
    db = str(tmp_path / "cli.db")
    meta = make_reasonvos(tmp_path / "ReasonVOS")
    assert main(["annotate", "create", str(meta), "--name", "cli study", "--n", "4", "--seed", "5",
                 "--db", db]) == 0
    assert "created study #1 'cli study': 4 of 6 items (reasonvos), seed 5" in capsys.readouterr().out
    samples = store.get_samples(db, 1)
    attrs = tmp_path / "attrs.json"
    attrs.write_text(json.dumps([{"video": s.video_id, "exp_id": s.exp_id, "reasoning": "r",
                                  "attributes": ["x"]} for s in samples]))
    assert main(["annotate", "import", "cli study", str(attrs), "--db", db]) == 0
    assert "4 item(s) updated" in capsys.readouterr().out
    for pos in range(4):
        store.record_judgement(db, 1, pos, "ann", "True" if pos else "False")
    jf = tmp_path / "jf.json"
    jf.write_text(json.dumps([{"video": s.video_id, "exp_id": s.exp_id, "J&F": 0.7} for s in samples]))
    assert main(["annotate", "scores", "1", str(jf), "--db", db]) == 0
    capsys.readouterr()
    assert main(["annotate", "stats", "1", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "3/4 correct (75.0 %" in out and "segmentation accurate for 3 of 3 correct cases (100.0 %)" in out
    assert main(["annotate", "stats", "1", "--json", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out)["consensus"]["n_true"] == 3
    assert main(["annotate", "export", "1", "--out", str(tmp_path / "exp"), "--db", db]) == 0
    assert len(list((tmp_path / "exp").iterdir())) == 5
    assert main(["annotate", "list", "--db", db]) == 0
    assert "#1\tcli study\t4 items\tseed 5" in capsys.readouterr().out
    # User errors are one line on stderr and exit code 2.
    assert main(["annotate", "create", str(tmp_path / "missing.json"), "--name", "x", "--db", db]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["annotate", "stats", "nope", "--db", db]) == 2


@pytest.mark.slow
def test_cli_generate_uses_env_database_and_the_tiny_model(tmp_path, data_dir, tiny_models, monkeypatch, capsys):
    db = tmp_path / "env.db"
    monkeypatch.setenv("STEERSEG_DB", str(db))
    meta = make_reasonvos(tmp_path / "ReasonVOS", ("libby",))
    assert main(["annotate", "create", str(meta), "--name", "g", "--n", "1", "--seed", "0"]) == 0
    assert main(["annotate", "generate", "g", "--backbone", str(tiny_models / "qwen2_5_vl"),
                 "--device", "cpu"]) == 0
    assert "generated 1, already had attributes 0, failed 0" in capsys.readouterr().out
    (s,) = store.get_samples(db, 1)
    assert s.ready and s.backbone == str(tiny_models / "qwen2_5_vl")
