"""Filling a study's attributes: resumable generation (also after a kill), the tiny real model,
another model's output file, and per-sample J&F from an evaluation run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from steerseg_core.annotation import (
    create_study,
    generate_attributes,
    import_attributes,
    import_segmentation_scores,
    store,
)
from steerseg_core.errors import InputError, VideoError
from steerseg_core.grounding.prompts import PROMPT_VERSION, parse_cot

from .test_annotation_helpers import colour_cot, make_reasonvos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def study(tmp_path, data_dir):
    meta = make_reasonvos(tmp_path / "ReasonVOS")
    db = tmp_path / "a.db"
    return db, create_study(db, meta, name="s", n=6, seed=3)


def test_generation_fills_every_item_and_never_recomputes(study):
    db, st = study
    calls: list[str] = []
    seen_progress: list[tuple[int, int]] = []

    def cot(clip, expression):
        calls.append(expression)
        return colour_cot(clip, expression)

    report = generate_attributes(db, st.id, cot, lambda i, n, what: seen_progress.append((i, n)),
                                 backbone="colour-model")
    assert (report.done, report.already, report.failed) == (6, 0, 0)
    assert seen_progress[0] == (0, 6) and seen_progress[-1] == (6, 6)
    samples = store.get_samples(db, st.id)
    for s in samples:
        assert s.ready and s.attributes[1] in ("bright", "dark") and s.attributes[2].endswith("frames")
        assert s.reasoning.startswith("The expression") and s.cot_raw.startswith("Reasoning:")
        assert (s.backbone, s.prompt_version, s.attributes_source) == ("colour-model", PROMPT_VERSION, "generated")
    assert sorted(calls) == sorted(s.expression for s in samples)
    again = generate_attributes(db, st.id, cot)
    assert (again.done, again.already) == (0, 6) and len(calls) == 6
    assert store.get_samples(db, st.id) == samples


def test_a_failing_clip_is_recorded_and_retried(study):
    db, st = study
    target = store.get_sample(db, st.id, 2)

    def loader(ref):
        if ref == target.clip_ref:
            raise VideoError("cannot decode this clip")
        from steerseg_core.annotation.studies import load_sample_clip

        return load_sample_clip(ref)

    report = generate_attributes(db, st.id, colour_cot, clip_loader=loader)
    broken = [s for s in store.get_samples(db, st.id) if s.clip_ref == target.clip_ref]
    assert report.failed == len(broken) and report.done == 6 - len(broken)
    assert all(s.gen_error == "cannot decode this clip" and not s.ready for s in broken)
    assert "cannot decode" in report.errors[0]
    fixed = generate_attributes(db, st.id, colour_cot)
    assert fixed.done == len(broken) and all(s.ready and not s.gen_error for s in store.get_samples(db, st.id))


def test_generation_killed_midway_resumes_without_recomputing(study):
    db, st = study
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from steerseg_core.annotation import generate_attributes
        from tests.test_annotation_helpers import colour_cot

        calls = 0

        def third_call_hangs(clip, expression):
            # two samples complete; the third call says so on stdout and hangs until killed, so
            # the kill always lands mid-generation (no race with a writer that already finished)
            global calls
            calls += 1
            if calls == 3:
                print("busy", flush=True)
                time.sleep(600)
            return colour_cot(clip, expression)

        generate_attributes({str(db)!r}, {st.id}, third_call_hangs, backbone="colour-model")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "busy"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    before = store.get_samples(db, st.id)
    done = [s for s in before if s.ready]
    assert len(done) == 2
    for s in done:  # each committed sample is complete
        assert s.reasoning and s.attributes and s.generated_at and s.backbone == "colour-model"
    for s in before:
        if not s.ready:
            assert s.reasoning is None and s.generated_at == ""
    calls = []
    report = generate_attributes(db, st.id, lambda c, e: calls.append(e) or colour_cot(c, e),
                                 backbone="colour-model")
    assert report.done == len(calls) == 6 - len(done) and report.already == len(done)
    after = {s.id: s for s in store.get_samples(db, st.id)}
    assert all(after[s.id] == s for s in done)  # untouched
    assert all(s.ready for s in after.values())


def test_generation_with_the_tiny_model(tmp_path, data_dir, tiny_models):
    """The real grounding core's CoT step (tiny random Qwen2.5-VL): parsed output is stored."""
    from steerseg_core.config import GroundingConfig
    from steerseg_core.pipeline import cached_grounder

    db = tmp_path / "a.db"
    st = create_study(db, make_reasonvos(tmp_path / "ReasonVOS", ("libby",)), name="tiny", n=2, seed=0)
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=40, n_prompts=8,
                          cot_max_new_tokens=12, use_soft_prompts=False, device="cpu")
    grounder = cached_grounder(cfg)
    report = generate_attributes(db, st.id, grounder.cot, backbone=cfg.backbone)
    assert (report.done, report.failed) == (2, 0)
    for s in store.get_samples(db, st.id):
        assert s.ready and s.backbone == cfg.backbone and s.prompt_version == PROMPT_VERSION
        assert isinstance(s.cot_raw, str) and isinstance(s.attributes, tuple)
        # Random weights rarely follow the format; what is stored is the parser's reading of the
        # raw answer, its notes included (kept for the annotator).
        parsed = parse_cot(s.cot_raw)
        assert s.attributes == parsed.attributes and tuple(s.cot_issues) == parsed.issues


def _attrs_file(path: Path, rows) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_import_attributes_matches_ignores_and_keeps(study, tmp_path):
    db, st = study
    samples = store.get_samples(db, st.id)
    rows = [{"video": s.video_id, "exp_id": s.exp_id, "reasoning": f"because {s.position}",
             "attributes": ["red", f"item {s.position}"], "backbone": "other/vlm"} for s in samples[:4]]
    rows.append({"video": "not-in-study", "exp_id": "0", "attributes": "x"})
    f = _attrs_file(tmp_path / "other.json", rows)
    with pytest.raises(InputError, match="1 item\\(s\\) are not in study"):
        import_attributes(db, st.id, f, strict=True)
    assert not any(s.ready for s in store.get_samples(db, st.id))
    report = import_attributes(db, st.id, f)
    assert (report.matched, report.updated, report.kept, report.ignored) == (4, 4, 0, 1)
    got = {s.position: s for s in store.get_samples(db, st.id)}
    assert got[0].attributes == ("red", "item 0") and got[0].backbone == "other/vlm"
    assert got[0].attributes_source == "imported:other.json" and not got[5].ready
    # Generation fills only the rest; a second import keeps answers unless asked to overwrite.
    assert generate_attributes(db, st.id, colour_cot).done == 2
    rows[0]["attributes"] = ["blue"]
    again = import_attributes(db, st.id, _attrs_file(tmp_path / "v2.json", rows[:1]))
    assert (again.updated, again.kept) == (0, 1)
    assert store.get_sample(db, st.id, 0).attributes == ("red", "item 0")
    forced = import_attributes(db, st.id, tmp_path / "v2.json", overwrite=True)
    assert forced.updated == 1 and store.get_sample(db, st.id, 0).attributes == ("blue",)


@pytest.mark.parametrize("content,match", [
    ("[{", "not valid JSON"),
    ('{"items": 3}', "expected a list"),
    ('[{"video": "libby"}]', "needs 'video' and 'exp_id'"),
    ('[{"video": "libby", "exp_id": 0, "attributes": []}]', "has no attributes"),
    ('[{"video": "libby", "exp_id": 0, "attributes": "a"}, {"video": "libby", "exp_id": "0", "attributes": "b"}]',
     "appears twice"),
    ('[{"video": "zebra", "exp_id": 0, "attributes": "a"}]', "none of its 1 items"),
])
def test_broken_attribute_files_are_refused(study, tmp_path, content, match):
    db, st = study
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(InputError, match=match):
        import_attributes(db, st.id, f)
    assert not any(s.ready for s in store.get_samples(db, st.id))


def test_segmentation_scores_from_csv_json_and_run_records(study, tmp_path):
    db, st = study
    samples = store.get_samples(db, st.id)
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text("video,exp_id,J&F\n" + "".join(
        f"{s.video_id},{s.exp_id},{40 + 10 * s.position}\n" for s in samples[:3]) + "zebra,0,99\n")
    assert import_segmentation_scores(db, st.id, csv_path) == 3  # percent → fraction; zebra ignored
    assert store.get_seg_scores(db, st.id) == pytest.approx(
        {s.id: (40 + 10 * s.position) / 100 for s in samples[:3]})
    with pytest.raises(InputError, match="1 row\\(s\\) are not in study"):
        import_segmentation_scores(db, st.id, csv_path, strict=True)
    run = tmp_path / "run"
    (run / "expressions").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"benchmark": "reasonvos"}))
    (run / "summary.json").write_text(json.dumps({"J&F": 0.61, "J": 0.5, "F": 0.72}))
    for s in samples:  # the eval runner's per-expression records (one without ground truth)
        rec = {"key": f"{s.video_id}/{s.exp_id}", "video": s.video_id, "exp_id": s.exp_id, "status": "ok"}
        rec.update({"J": 0.5, "F": 0.7, "JF": 0.6} if s.position else {"J": None, "F": None, "JF": None})
        (run / "expressions" / f"{s.position}.json").write_text(json.dumps(rec))
    assert import_segmentation_scores(db, st.id, run, strict=True) == 5  # replaces the CSV's scores
    assert sorted(store.get_seg_scores(db, st.id).values()) == pytest.approx([0.6] * 5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"video": samples[0].video_id, "exp_id": samples[0].exp_id, "jf": "high"}]))
    with pytest.raises(InputError, match="no usable J&F"):
        import_segmentation_scores(db, st.id, bad)
    assert len(store.get_seg_scores(db, st.id)) == 5
