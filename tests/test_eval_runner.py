"""The batch runner: records, masks and summaries; resumption after an interruption and after a
SIGKILL; shards + merge; the α sweep and the ablation grids; the eval CLI.

The predictor here is a real object, not a mock: it reads the clip's frame names and the real
DAVIS annotation of its video, and returns tracklets derived from it (eroded, shifted, empty) with
grounding maps made from the annotation, so every expected number can be computed independently.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from steerseg_core.cli import main as eval_main
from steerseg_core.config import SteerSegConfig
from steerseg_core.datasets import open_benchmark
from steerseg_core.errors import InputError
from steerseg_core.eval import ablation
from steerseg_core.eval.correlation import downsample_mask
from steerseg_core.eval.metrics import boundary_f, jaccard
from steerseg_core.eval.runner import (
    RunDir,
    RunOptions,
    merge_runs,
    run_benchmark,
    shard_expressions,
)
from steerseg_core.eval.summaries import summarize
from steerseg_core.types import Clip, GroundingResult, SegmentationResult, TokenGeometry, Tracklet

from .conftest import ROOT, davis_masks
from .test_eval_benchmarks import build_mevis, build_refdavis, build_refytvos, halves, split_column

QUIET = RunOptions(stream=None)


def davis_gt(video: str, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([np.array(Image.open(davis_masks(video) / f"{n}.png")) == 255 for n in names])


def erode(m: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return m.copy()
    return np.stack([ndi.binary_erosion(f, iterations=r) for f in m])


def shift_right(m: np.ndarray, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    out[..., dx:] = m[..., :-dx]
    return out


class GTDerivedPredictor:
    """Segments a DAVIS clip by looking up its annotation: three candidate tracklets — eroded
    (chosen at α = 0.3), shifted 40 px (chosen at α = 1), empty — and rollout maps that are the
    annotation averaged onto a token grid (frame branch) and its complement (video branch).

    For Ref-DAVIS fixtures "left" / "right" in the expression selects that half of the object.
    """

    def __init__(self, erode_px: int = 3, interrupt_at: int | None = None, kill_at: int | None = None):
        self.erode_px = erode_px
        self.interrupt_at = interrupt_at
        self.kill_at = kill_at
        self.calls: list[str] = []

    def run(self, clip: Clip, expression: str) -> SegmentationResult:
        self.calls.append(expression)
        if self.interrupt_at is not None and len(self.calls) >= self.interrupt_at:
            raise KeyboardInterrupt
        if self.kill_at is not None and len(self.calls) >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if "crash" in expression:
            raise RuntimeError("model failed")
        video = {"vid_a": "libby"}.get(Path(clip.source).name, Path(clip.source).name)
        gt = davis_gt(video, clip.names())
        if "left" in expression or "right" in expression:
            left, right = halves(gt, split_column(video))
            gt = left if "left" in expression else right
        eroded = erode(gt, self.erode_px)
        t = clip.num_frames
        keyframes = np.arange(0, t, 2)
        video_frames = np.arange(1, t, 2)
        s_frm = np.stack([downsample_mask(gt[k], (15, 27)) for k in keyframes])
        s_vid = np.stack([downsample_mask(gt[k], (8, 14)) for k in video_frames])
        g = GroundingResult(
            expression=expression, cot=None, query_word="swan", query_words_frames=(),
            keyframes=keyframes, video_frames=video_frames, s_frm=s_frm, s_vid=s_vid,
            frame_geometry=TokenGeometry((15, 27), gt.shape[1:]), video_geometry=TokenGeometry((8, 14), gt.shape[1:]),
            use_cot=True, use_soft_prompts=True, backbone="gt-derived", layers=(0, 0))
        tracklets = (Tracklet(0, (1.0, 1.0), eroded, s_frm=0.5, s_vid=0.9, s=0.78),
                     Tracklet(2, (5.0, 5.0), shift_right(gt, 40), s_frm=0.9, s_vid=0.2, s=0.41),
                     Tracklet(4, (9.0, 9.0), np.zeros_like(gt)))
        return SegmentationResult(clip.source, expression, g, tracklets, 0, {})


def make_predictor(config: SteerSegConfig) -> GTDerivedPredictor:
    """Factory for --predictor; KILL_AT in the environment makes the process SIGKILL itself."""
    kill = os.environ.get("STEERSEG_TEST_KILL_AT")
    return GTDerivedPredictor(kill_at=int(kill) if kill else None)


def groups(summary: dict) -> list[tuple]:
    return [(g["name"], round(g["J"], 12), round(g["F"], 12), g["n"]) for g in summary["groups"]]


@pytest.fixture(scope="module")
def mevis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mevis(tmp_path_factory.mktemp("mevis"))


@pytest.fixture(scope="module")
def clean_run(mevis_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("clean") / "run"
    summary = run_benchmark(open_benchmark("mevis", mevis_root), out, SteerSegConfig(), GTDerivedPredictor(), QUIET)
    return out, summary


def test_records_masks_and_summary(mevis_root, clean_run):
    out, summary = clean_run
    bench = open_benchmark("mevis", mevis_root)
    run = RunDir(out)
    records = run.load_records()
    assert sorted(records) == ["blackswan/0", "blackswan/1", "camel/0"]
    js, fs = [], []
    for e in bench.expressions():
        rec = records[e.key]
        gt = davis_gt(e.video, e.frames)  # camel's GT is the union of its two annotations
        eroded = erode(gt, 3)
        j, f = float(np.mean(jaccard(gt, eroded))), float(np.mean(boundary_f(gt, eroded)))
        assert rec["status"] == "ok" and rec["J"] == pytest.approx(j) and rec["F"] == pytest.approx(f)
        js.append(j)
        fs.append(f)
        shifted = shift_right(gt, 40)
        tr = rec["tracklets"]
        assert len(tr) == 3 and rec["chosen"] == 0
        assert tr[1]["J"] == pytest.approx(float(np.mean(jaccard(gt, shifted))))
        assert tr[2]["J"] == 0.0 and tr[2]["s_frm"] is None  # NaN scores are stored as null
        assert rec["correlation"]["frame"] == pytest.approx(1.0) and rec["correlation"]["video"] == pytest.approx(1.0)
        written = np.stack([np.array(Image.open(out / "Annotations" / e.video / e.exp_id / f"{n}.png"))
                            for n in e.frames])
        assert set(np.unique(written)) <= {0, 255} and ((written == 255) == eroded).all()
    (overall,) = summary["groups"]
    assert overall["J"] == pytest.approx(np.mean(js)) and overall["F"] == pytest.approx(np.mean(fs))
    assert overall["J&F"] == pytest.approx((np.mean(js) + np.mean(fs)) / 2)
    assert summary["complete"] and summary["expressions"] == {"done": 3, "total": 3, "errors": 0}
    assert summary["correlation"]["frame"] == pytest.approx(1.0)
    assert json.loads((out / "summary.json").read_text())["groups"][0]["J&F"] == pytest.approx(overall["J&F"])
    md = (out / "summary.md").read_text()
    assert "## MeViS (valid_u split)" in md and "complete: 3/3" in md and "server" in md and "Table 3" in md


def test_resume_after_interrupt_redoes_nothing(mevis_root, clean_run, tmp_path):
    bench = open_benchmark("mevis", mevis_root)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(bench, out, SteerSegConfig(), GTDerivedPredictor(interrupt_at=2), QUIET)
    assert list(RunDir(out).load_records()) == ["blackswan/0"]
    # A stray temp file and a truncated record (what a non-atomic writer could leave) do not count.
    (out / "expressions" / ".camel%2F0.json.x.tmp").write_text("{")
    (out / "expressions" / "camel%2F0.json").write_text('{"key": "camel/0", "sta')
    again = GTDerivedPredictor()
    summary = run_benchmark(bench, out, SteerSegConfig(), again, QUIET)
    assert again.calls == ["the bird on the water", "the camel walking"]
    assert groups(summary) == groups(clean_run[1])
    rerun = GTDerivedPredictor()
    run_benchmark(bench, out, SteerSegConfig(), rerun, QUIET)
    assert rerun.calls == []  # everything done: nothing runs, the model is not even asked


def test_resume_after_sigkill_via_cli(mevis_root, clean_run, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "steerseg_core", "eval", "mevis", "--data-root", str(mevis_root),
           "--out", str(out), "--predictor", "tests.test_eval_runner:make_predictor"]
    env = {**os.environ, "STEERSEG_TEST_KILL_AT": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(RunDir(out).load_records()) == ["blackswan/0", "blackswan/1"]
    assert "[2/3] blackswan/1" in proc.stderr and "ETA" in proc.stderr
    env.pop("STEERSEG_TEST_KILL_AT")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 already done, 1 to run" in proc.stderr
    assert groups(json.loads((out / "summary.json").read_text())) == groups(clean_run[1])
    assert "| SteerSeg (" in proc.stdout


def test_errors_are_recorded_scored_empty_and_retried(tmp_path, mevis_root):
    root = tmp_path / "m"
    build_mevis(root, n=4)
    meta_path = root / "valid_u" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["blackswan"]["expressions"]["1"]["exp"] = "crash please"
    meta_path.write_text(json.dumps(meta))
    bench = open_benchmark("mevis", root)
    summary = run_benchmark(bench, tmp_path / "run", SteerSegConfig(), GTDerivedPredictor(), QUIET)
    rec = RunDir(tmp_path / "run").load_records()["blackswan/1"]
    assert rec["status"] == "error" and "model failed" in rec["error"] and rec["J"] == 0.0
    assert summary["expressions"]["errors"] == 1 and summary["groups"][0]["n"] == 3
    again = GTDerivedPredictor()
    run_benchmark(bench, tmp_path / "run", SteerSegConfig(), again, QUIET)
    assert again.calls == ["crash please"]


def test_shards_and_merge_equal_a_single_run(mevis_root, clean_run, tmp_path):
    bench = open_benchmark("mevis", mevis_root)
    exprs = bench.expressions()
    parts = [shard_expressions(exprs, i, 2) for i in range(2)]
    assert sorted(e.key for p in parts for e in p) == sorted(e.key for e in exprs)
    assert {e.video for e in parts[0]}.isdisjoint({e.video for e in parts[1]})  # whole videos
    for i in range(2):
        s = run_benchmark(bench, tmp_path / f"s{i}", SteerSegConfig(), GTDerivedPredictor(),
                          RunOptions(stream=None, shard=(i, 2)))
        assert not s["complete"]
    merged = merge_runs(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"], stream=None)
    assert merged["complete"] and groups(merged) == groups(clean_run[1])
    assert (tmp_path / "merged" / "Annotations" / "camel" / "0" / "00000.png").is_file()
    # shards of another configuration are refused
    other = SteerSegConfig()
    other.segment.alpha = 0.5
    run_benchmark(bench, tmp_path / "odd", other, GTDerivedPredictor(), RunOptions(stream=None, limit=1))
    with pytest.raises(InputError, match="segment.alpha"):
        merge_runs(tmp_path / "m2", [tmp_path / "s0", tmp_path / "odd"], stream=None)


@pytest.mark.slow
def test_accelerate_launch_two_processes_equal_a_single_run(mevis_root, clean_run, tmp_path):
    """`accelerate launch -m steerseg_core eval` with 2 CPU processes (gloo): accelerate splits
    the videos between the processes, both write into one --out, and process 0 summarises it —
    the same records, masks and scores as the single-process run. (`--multi_gpu` is accelerate's
    launcher that starts N processes through torch.distributed.run; `--device cpu` keeps them on
    the CPU. accelerate's `--cpu` flag starts one process unless run under mpirun.)"""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
           str(_free_port()), "-m", "steerseg_core", "eval", "mevis", "--data-root", str(mevis_root), "--out", str(out),
           "--device", "cpu", "--predictor", "tests.test_eval_runner:make_predictor"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = RunDir(out).load_records()
    single = RunDir(clean_run[0]).load_records()
    assert sorted(records) == sorted(single)
    # each process ran whole videos: blackswan (2 expressions) on process 0, camel on process 1
    assert {k: r["shard"] for k, r in records.items()} == {"blackswan/0": "0/2", "blackswan/1": "0/2",
                                                           "camel/0": "1/2"}
    assert "shard 0/2 has 2" in proc.stderr and "shard 1/2 has 1" in proc.stderr
    for key, rec in records.items():
        assert (rec["J"], rec["F"], rec["chosen"]) == (single[key]["J"], single[key]["F"], single[key]["chosen"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and groups(summary) == groups(clean_run[1])
    assert proc.stdout.count("## MeViS (") == 1  # only process 0 reports
    for png in sorted((clean_run[0] / "Annotations").rglob("*.png")):
        assert (out / png.relative_to(clean_run[0])).read_bytes() == png.read_bytes()
    # a rerun resumes: nothing left to do on either process
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 already done, 0 to run" in proc.stderr and "1 already done, 0 to run" in proc.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_with_other_config_is_refused(mevis_root, clean_run):
    other = SteerSegConfig()
    other.grounding.use_cot = False
    with pytest.raises(InputError, match="grounding.use_cot"):
        run_benchmark(open_benchmark("mevis", mevis_root), clean_run[0], other, GTDerivedPredictor(), QUIET)


def test_alpha_sweep_repicks_stored_tracklets(clean_run):
    out, summary = clean_run
    rows = ablation.alpha_sweep([out], [0.3, 1.0])
    at = {a: s["MeViS"]["groups"][0] for a, s in rows}
    assert at[0.3]["J"] == pytest.approx(summary["groups"][0]["J"])
    records = RunDir(out).load_records().values()
    assert at[1.0]["J"] == pytest.approx(np.mean([r["tracklets"][1]["J"] for r in records]))
    md = ablation.alpha_markdown(rows)
    assert "| 0.3 |" in md and "| 1 |" in md


def test_component_grid_table(mevis_root, tmp_path):
    erosion = {(True, True): 1, (False, True): 3, (True, False): 5, (False, False): 8}
    seen = []

    def factory(config: SteerSegConfig) -> GTDerivedPredictor:
        g = config.grounding
        seen.append((g.use_cot, g.use_soft_prompts))
        return GTDerivedPredictor(erode_px=erosion[(g.use_cot, g.use_soft_prompts)])

    opts = RunOptions(stream=None, videos=["blackswan"], limit=1)
    variants = ablation.component_variants()
    with pytest.raises(InputError, match="no checkpoint is given"):  # never a silent "soft prompts" row
        ablation.run_grid(variants, "mevis", mevis_root, tmp_path / "grid", SteerSegConfig(), factory, opts)
    assert seen == [] and not (tmp_path / "grid").exists()
    base = SteerSegConfig()
    base.grounding.soft_prompts = "seed"
    out = ablation.run_grid(variants, "mevis", mevis_root, tmp_path / "grid", base, factory, opts)
    assert seen == [(False, False), (True, False), (False, True), (True, True)]
    jf = {k: s["groups"][0]["J&F"] for k, s in out.items()}
    assert jf["both"] > jf["soft-prompts"] > jf["cot"] > jf["none"]
    table = ablation.grid_table("components", tmp_path / "grid", variants)
    assert "| CoT + soft prompts |" in table and "MeViS r_frm / r_vid" in table and "1.000 / 1.000" in table


def test_n_prompts_grid_passes_checkpoints(mevis_root, tmp_path):
    configs = []

    def factory(config: SteerSegConfig) -> GTDerivedPredictor:
        configs.append((config.grounding.n_prompts, config.grounding.soft_prompts))
        return GTDerivedPredictor()

    variants = ablation.n_prompt_variants(ablation.parse_checkpoints(["8=ck8.safetensors", "4=ck4.safetensors"]))
    ablation.run_grid(variants, "mevis", mevis_root, tmp_path / "np", SteerSegConfig(), factory,
                      RunOptions(stream=None, limit=1))
    assert configs == [(4, "ck4.safetensors"), (8, "ck8.safetensors")]
    assert "| N_p = 4 |" in ablation.grid_table("n-prompts", tmp_path / "np", variants)
    with pytest.raises(InputError, match="N=PATH"):
        ablation.parse_checkpoints(["big.safetensors"])


def test_refdavis_official_scores_from_combined_masks(tmp_path):
    bench = open_benchmark("refdavis", build_refdavis(tmp_path / "rd"))
    summary = run_benchmark(bench, tmp_path / "run", SteerSegConfig(), GTDerivedPredictor(), QUIET)
    by = {g["name"]: g for g in summary["groups"]}
    assert set(by) == {"annot1", "annot1_full_video", "annot2", "annot2_full_video", "overall"}
    assert by["overall"]["n"] == 8  # 2 objects x 4 annotator runs
    assert "unsupervised" in summary["notes"][0]
    # The halves do not overlap and stay clear of the void band, so the official per-annotator
    # score equals the mean of the per-expression scores.
    records = list(RunDir(tmp_path / "run").load_records().values())
    approx = summarize(bench, records, None)
    assert by["overall"]["J"] == pytest.approx(approx["groups"][-1]["J"], abs=1e-12)
    assert by["overall"]["F"] == pytest.approx(approx["groups"][-1]["F"], abs=1e-12)
    assert 0.5 < by["overall"]["J&F"] < 1.0
    md = (tmp_path / "run" / "summary.md").read_text()
    assert sum(line.startswith("|---") for line in md.splitlines()) == 1  # one table row: the average
    assert "| Method | J&F | J | F |" in md


def test_refytvos_run_writes_submission(tmp_path):
    bench = open_benchmark("refytvos", build_refytvos(tmp_path / "yt"))
    summary = run_benchmark(bench, tmp_path / "run", SteerSegConfig(), GTDerivedPredictor(), QUIET)
    assert summary["groups"] == [] and summary["complete"]
    assert summary["submission"]["files"] == 8 and summary["submission"]["filled_empty"] == 0
    assert (tmp_path / "run" / "submission.zip").is_file()


def test_cli_eval_limit_and_pred_dir(mevis_root, clean_run, tmp_path, capsys):
    rc = eval_main(["eval", "mevis", "--data-root", str(mevis_root), "--out", str(tmp_path / "a"), "--limit", "1",
                    "--predictor", "tests.test_eval_runner:make_predictor"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "PARTIAL: 1/1" not in captured.out and "complete: 1/1" in captured.out
    assert "[1/1] blackswan/0" in captured.err
    # score the clean run's masks as a prediction folder: same numbers
    rc = eval_main(["eval", "mevis", "--data-root", str(mevis_root), "--out", str(tmp_path / "b"),
                    "--pred-dir", str(clean_run[0] / "Annotations"), "--quiet"])
    assert rc == 0
    assert groups(json.loads((tmp_path / "b" / "summary.json").read_text())) == groups(clean_run[1])
    rc = eval_main(["eval", "mevis", "--data-root", str(mevis_root), "--out", str(tmp_path / "c"),
                    "--videos", "zebra", "--quiet"])
    assert rc == 2 and "unknown video" in capsys.readouterr().err


def test_main_cli_registers_eval_commands():
    # An ImportError here is a failure: every command module of the tree must import.
    from steerseg_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"eval-masks", "eval", "eval-merge", "eval-ablation", "eval-table"} <= set(sub.choices)


def test_cli_merge_table_and_ablations(mevis_root, clean_run, tmp_path, capsys):
    out, summary = clean_run
    assert eval_main(["eval-merge", str(out)]) == 0  # re-summarise a finished run
    assert "complete: 3/3" in capsys.readouterr().out
    assert eval_main(["eval-table", str(out), "--label", "ours"]) == 0
    row = capsys.readouterr().out.splitlines()
    assert row[0].startswith("| Method | MeViS valid_u J&F | MeViS valid_u J | MeViS valid_u F |")
    assert row[2].startswith(f"| ours | {100 * summary['groups'][0]['J&F']:.1f} |")
    assert eval_main(["eval-ablation", "alpha", "--runs", str(out), "--alphas", "0,1"]) == 0
    assert "| 0 |" in capsys.readouterr().out
    grid = tmp_path / "grid"
    davis_root = build_refdavis(tmp_path / "rd", n=3)
    assert eval_main(["eval-ablation", "components", "--benchmark", f"mevis={mevis_root}",
                      f"refdavis={davis_root}", "--out", str(grid), "--limit", "1", "--quiet",
                      "--predictor", "tests.test_eval_runner:make_predictor", "--soft-prompts", "seed"]) == 0
    table = capsys.readouterr().out
    assert "| Variant | MeViS J&F | Ref-DAVIS17 J&F |" in table
    assert table.count("| none |") == 1 and (grid / "ablation-components.md").read_text() == table.rstrip("\n") + "\n"
    assert json.loads((grid / "mevis" / "cot" / "run.json").read_text())["config"]["grounding"]["use_soft_prompts"] is False
    assert eval_main(["eval-ablation", "n-prompts", "--benchmark", "mevis", "--data-root", str(mevis_root),
                      "--out", str(grid)]) == 2  # no checkpoints given


@pytest.mark.slow
def test_eval_with_the_real_pipeline_and_tiny_models(tiny_models, tmp_path):
    """`python -m steerseg_core eval` end to end: SteerSeg (tiny random models) on a MeViS fixture."""
    root = build_mevis(tmp_path / "m", n=3)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "steerseg_core", "eval", "mevis", "--data-root", str(root), "--out", str(out),
         "--limit", "1", "--backbone", str(tiny_models / "qwen2_5_vl"), "--sam2", str(tiny_models / "sam2"),
         "--t-frame", "2", "--t-video", "2", "--frame-tokens", "24"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = RunDir(out).load_records()["blackswan/0"]
    assert rec["status"] == "ok", rec.get("traceback")
    assert 0 <= rec["J"] <= 1 and len(rec["tracklets"]) >= 1 and len(rec["keyframes"]) == 2
    assert set(rec["correlation"]) >= {"frame", "video"}
    assert len(list((out / "Annotations" / "blackswan" / "0").glob("*.png"))) == 3
    assert "## MeViS (valid_u split)" in proc.stdout
