"""Load: the launched app (its own process, tiny models) under 20 concurrent gradio_client clients.

Three clients ask for segmentations back to back — one runs, one may wait, the third gets the
"Busy" message (``STEERSEG_MAX_WAITING_JOBS=1``) — and some of their requests are refused for a
clear reason (a text file renamed .mp4, an expression over the length limit); seventeen annotate.
Checked: every call completes or is refused with a clear message, annotation latency stays
bounded, the server survives, every confirmed answer is stored exactly once, and memory and the
temporary folders return to a steady baseline (downloads are kept ``STEERSEG_OUTPUTS_MAX_AGE``
seconds, 10 here, then pruned; Gradio removes its copies on the same schedule and all of them at
shutdown). The numbers are recorded in benchmarks/README.md ("Load").
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from steerseg_core.annotation import store

from .conftest import ROOT

pytestmark = pytest.mark.slow

AGE_S = 10  # STEERSEG_OUTPUTS_MAX_AGE for the app under test
LOAD_S = 20
# What one finished segmentation leaves in its outputs folder.
RUN_FILES = {"masks.zip", "overlay.mp4", "result.json", "masks_coco_rle.json"}


def load_module():
    spec = importlib.util.spec_from_file_location("steerseg_load_test", ROOT / "benchmarks" / "load_test.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lt():
    return load_module()


def _run_dirs(work: Path) -> list[Path]:
    return sorted(p for p in (work / "outputs").iterdir())


def test_twenty_clients_segment_and_annotate(lt, tiny_models, tmp_path, data_dir):
    tiny, clip, bad, db, study_id, n_items = lt.prepare(tmp_path, tiny_models)
    env = lt.server_env(tmp_path, db, STEERSEG_MAX_WAITING_JOBS="1", STEERSEG_OUTPUTS_MAX_AGE=str(AGE_S))
    server = lt.start_server(tmp_path, tiny, env)
    try:
        lt.warm_up(server, clip, study_id, n_items)
        baseline_rss = server.rss_mb()
        gifs = lt.snapshot(tmp_path)["gif_cache"]
        clips = {s.clip_ref for s in store.get_samples(db, study_id)}
        assert len(gifs) == len(clips) < n_items  # one cached preview per clip: made once, shared, reused

        result = lt.run_load(server.url, clip, bad, study_id, n_items, clients=20, segment_clients=3,
                             seconds=LOAD_S)
        summary = result.summary()
        print("\nload:", summary, f"RSS after warm-up {baseline_rss:.0f} MB, after load {server.rss_mb():.0f} MB")

        # 1. every call completed or was refused with a clear reason; nothing else went wrong
        assert summary["failures"] == []
        seg = summary["segment_outcomes"]
        assert seg.get(lt.OUTCOME_OK, 0) >= 1 and seg.get(lt.OUTCOME_BUSY, 0) >= 1, seg
        assert seg.get(lt.OUTCOME_LIMIT, 0) >= 1, seg  # the renamed text file / too-long expression
        ann = result.of(annotation=True)
        assert len(ann) >= 60 and all(c.outcome == lt.OUTCOME_OK for c in ann)
        # annotation kept answering while segmentations ran (every call above completed OK); its
        # latency is a figure for benchmarks/, not a pass/fail bound on shared CPU cores
        assert server.alive()

        # 2. every answer the server confirmed is stored, once, with its last label
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        assert result.answers
        for name, answers in result.answers.items():
            rows = store.get_judgements(db, study_id, annotator=name, question="reasoning")
            assert len(rows) == len({r.sample_id for r in rows})  # no duplicates
            by_position = {r.sample_id - 1: r.label for r in rows}  # sample ids follow positions here
            assert by_position == answers, name

        # 3. files: nothing in TMPDIR, no new GIFs, no partial or stray download folders
        files = lt.snapshot(tmp_path)
        assert files["tmp"] == set(), sorted(files["tmp"])[:10]
        assert files["gif_cache"] == gifs
        for run in _run_dirs(tmp_path):  # older ones may already be pruned (AGE_S)
            assert not run.name.startswith("."), run.name
            names = {p.name for p in run.iterdir() if p.is_file()}
            assert names in (RUN_FILES, set()), names  # a run's files, or an annotation export
        ok_segments = seg[lt.OUTCOME_OK] + 1  # + the warm-up
        assert len(_run_dirs(tmp_path)) <= ok_segments

        # 4. steady state: once AGE_S has passed, the next request prunes every older download
        # and Gradio's cleaner (every AGE_S) has removed its copies; memory is back near baseline
        time.sleep(2 * AGE_S + 2)
        client = lt._client(server.url)
        files_out, msg = client.predict(str(study_id), 0.5, api_name="/annotate_export")
        assert msg.startswith("exported")
        runs = _run_dirs(tmp_path)
        assert len(runs) == 1 and not (runs[0] / "masks.zip").exists()  # only the export just made
        # Gradio's own cache copies: its cleaner (every AGE_S) removes those it tracks, the app's
        # janitor (ui/janitor.py) every other copy older than AGE_S; wait for them (bounded)
        deadline = time.monotonic() + 120
        while (len(gradio_files := lt.snapshot(tmp_path)["gradio"]) > len(files_out) + 2
               and time.monotonic() < deadline):
            time.sleep(0.5)
        assert len(gradio_files) <= len(files_out) + 2, sorted(gradio_files)
        rss = server.rss_mb()
        print(f"RSS: after warm-up {baseline_rss:.0f} MB, {2 * AGE_S} s after the load {rss:.0f} MB")
        assert rss < baseline_rss + 300
    finally:
        code = server.stop()
    assert code == 0  # a clean shutdown (SIGTERM), no crash
    # Gradio deletes every file it made at shutdown
    assert lt.snapshot(tmp_path)["gradio"] == set()
    # the server logged only the refusals users saw (gr.Error), no crash of ours or Gradio's
    log = (tmp_path / "server.log").read_text(errors="replace")
    raised = re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n|\n)*?(\S.*)", log)
    assert all(line.startswith("gradio.exceptions.Error: ") for line in raised), raised
