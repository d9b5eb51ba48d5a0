"""The app: Segment-tab handlers called directly, then the launched app driven by gradio_client.

Tiny random-weight models stand in for the real ones (no hub here); the clip is real DAVIS footage
encoded to mp4 at test time, uploaded exactly as a user's file would be.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from steerseg_core.config import SteerSegConfig
from steerseg_core.video import load_clip
from ui.context import AppContext

from .conftest import davis_frames

N_FRAMES = 12


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory) -> Path:
    """The first 12 frames of DAVIS 'blackswan', 160×90, as an H.264 mp4."""
    frames = load_clip(davis_frames("blackswan"), max_side=160).frames[:N_FRAMES]
    path = tmp_path_factory.mktemp("upload") / "blackswan.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def ctx(tiny_models, tmp_path_factory) -> AppContext:
    root = tmp_path_factory.mktemp("app")
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.grounding.frame_max_tokens = 24
    cfg.grounding.cot_max_new_tokens = 16
    cfg.grounding.t_frame, cfg.grounding.t_video = 3, 4
    cfg.segment.sam2 = str(tiny_models / "sam2")
    return AppContext(config=cfg, db_path=root / "db.sqlite", checkpoints_dir=root / "ckpt",
                      runs_dir=root / "runs", cache_dir=root / "cache", outputs_dir=root / "outputs")


def _advanced(ctx: AppContext) -> list:
    g, s = ctx.config.grounding, ctx.config.segment
    return [g.backbone, "seed-initialised (untrained)", True, True, 0.3, g.t_frame, g.t_video, "", 0.7, s.sam2]


@pytest.mark.slow
def test_handlers_end_to_end(ctx, clip_mp4, tmp_path):
    import gradio as gr

    from ui import segment

    out = segment.run_segment(ctx, str(clip_mp4), "the black swan", *_advanced(ctx))
    (status, reasoning, attributes, word, heatmaps, tiles, thumbs, rows, number, overlay, files, frame, slider,
     _clicks, timings, session) = out
    assert "tiny random-weight" in status and "seed-initialised" in status
    assert len(heatmaps) == 3 and heatmaps[0][0].shape == (90, 160, 3)
    assert heatmaps[0][1].startswith(f"frame {int(session['result'].grounding.keyframes[0])}")
    # S_vid: one legible tile per video frame, aspect kept, captioned with its frame index
    g = session["result"].grounding
    assert [c for _, c in tiles] == [f"frame {int(f)}" for f in g.video_frames]
    assert all(img.shape == (90, 160, 3) for img, _ in tiles)
    assert len(thumbs) == len(rows) >= 1 and sum(r[1] == "★" for r in rows) == 1
    chosen = session["result"].chosen
    assert "★" in thumbs[chosen][1] and len(thumbs[chosen][1]) <= 16  # short, complete captions
    assert number.value == chosen and number.label.endswith(f"(0–{len(rows) - 1})")
    assert Path(overlay).exists() and [Path(f).name for f in files] == [
        "masks.zip", "masks_coco_rle.json", "result.json", "overlay.mp4"]
    assert slider.interactive and slider.maximum == N_FRAMES - 1
    stages = [r[0] for r in timings]
    assert stages[-1] == "Total" and all("_" not in s for s in stages) and "SAM2 load" in stages
    assert "clip" not in session  # the decoded clip is not kept in the session
    with zipfile.ZipFile(files[0]) as z:
        pngs = sorted(n for n in z.namelist() if n.endswith(".png"))
    assert len(pngs) == N_FRAMES

    # pick another candidate (no model rerun), rescore with another alpha
    other = (chosen + 1) % len(rows)
    status2, thumbs2, rows2, number2, *_rest, session = segment.pick_candidate(ctx, session, other)
    assert rows2[other][1] == "★" and number2.value == other and f"#{other} chosen" in status2
    with pytest.raises(gr.Error, match="candidate 7 does not exist"):
        segment.pick_candidate(ctx, session, 7)
    *_r, session = segment.rescore(ctx, session, 1.0)
    best = max(range(len(session["result"].tracklets)), key=lambda i: session["result"].tracklets[i].s_frm)
    assert session["result"].chosen == best

    # click to correct: a positive click re-propagates the chosen tracklet
    class Evt:
        index = (80, 45)

    segment.show_frame(session, 5)
    img, text, session = segment.add_click(session, "positive", Evt())
    assert "frame 5" in text and img.shape == (90, 160, 3)
    *_r, session = segment.apply_clicks(ctx, session)
    chosen_t = session["result"].tracklets[session["result"].chosen]
    assert chosen_t.clicks and chosen_t.masks.shape == (N_FRAMES, 90, 160)

    with pytest.raises(gr.Error, match="Upload a video"):
        segment.run_segment(ctx, None, "x", *_advanced(ctx))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(gr.Error, match="bad.mp4"):
        segment.run_segment(ctx, str(bad), "the swan", *_advanced(ctx))
    with pytest.raises(gr.Error, match="Advanced → backbone") as err:
        segment.run_segment(ctx, str(clip_mp4), "the swan", str(tmp_path / "no_model"), *_advanced(ctx)[1:])
    assert segment.TINY_BUTTON in str(err.value.message)


def test_a_one_frame_clip_renders(ctx, clip_mp4, tmp_path):
    """Any clip the pipeline accepts renders: one frame gives a fixed (non-interactive) frame slider."""
    from ui import segment

    one = tmp_path / "one.png"
    Image.fromarray(load_clip(clip_mp4).frames[0]).save(one)
    out = segment.run_segment(ctx, str(one), "the black swan", *_advanced(ctx))
    status, slider, session = out[0], out[12], out[-1]
    assert "candidate" in status and session["result"].masks.shape[0] == 1
    assert slider.interactive is False and slider.maximum > slider.minimum


def test_tiny_try_out_builds_its_models_once(tmp_path):
    """The one-click try-out: tiny random-weight models under the cache folder, labelled as such,
    built once and reused."""
    from steerseg_core.files import has_tiny_marker
    from ui import segment

    ctx = AppContext(config=SteerSegConfig(), cache_dir=tmp_path / "cache")
    names = segment.prepare_tiny_models(ctx)
    assert names[:2] == (segment.TINY_CHOICE, segment.TINY_CHOICE) and "meaningless" in names[2]
    assert str(tmp_path) not in "".join(names)  # a name on the page, never the server folder
    cfg = segment.build_config(ctx, segment.TINY_CHOICE, segment.NO_SOFT_PROMPTS, True, True, 0.3, 2, 2, "", 0.7,
                               segment.TINY_CHOICE)
    backbone, sam2 = cfg.grounding.backbone, cfg.segment.sam2
    assert has_tiny_marker(backbone) and has_tiny_marker(sam2) and backbone.startswith(str(tmp_path))
    stamp = (Path(backbone) / "config.json").stat().st_mtime_ns
    assert segment.prepare_tiny_models(ctx) == names
    assert (Path(backbone) / "config.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    missing = segment.model_missing_text("'Qwen/Qwen2.5-VL-7B-Instruct' is not cached and the hub is offline")
    assert "Advanced → backbone" in missing and segment.TINY_BUTTON in missing


@pytest.mark.slow
def test_the_gpu_job_and_its_result_pickle(ctx, clip_mp4):
    """ZeroGPU runs the decorated function in another process: the exact payload the app passes and
    the result it gets back must pickle (a real clip, tiny models). No GPU is needed for that."""
    import pickle

    from ui import gpu, segment

    cfg = segment.build_config(ctx, *_advanced(ctx))
    job = gpu.GpuJob(config=cfg, video=str(clip_mp4), expression="the black swan", max_seconds=300)
    assert pickle.loads(pickle.dumps(job)) == job  # a path travels, not decoded frames
    result = gpu.segment_on_gpu(job)
    back = pickle.loads(pickle.dumps(result))
    assert back.chosen == result.chosen and np.array_equal(back.masks, result.masks)
    refine = gpu.GpuJob(config=cfg, video=str(clip_mp4), result=result, clicks=((2, 80.0, 45.0, 1),))
    assert pickle.loads(pickle.dumps(refine)).clicks == refine.clicks
    # the slot length follows the clip: a floor, grows with frames × keyframes, capped by the service
    assert gpu.gpu_seconds(job) == max(gpu.MIN_SECONDS, int(gpu.BASE_SECONDS + gpu.SECONDS_PER_FRAME_AND_CANDIDATE
                                                             * N_FRAMES * cfg.grounding.t_frame))
    assert gpu.gpu_seconds(gpu.GpuJob(config=cfg, video="missing.mp4")) == gpu.MIN_SECONDS
    long_cfg = segment.build_config(ctx, *_advanced(ctx))
    long_cfg.grounding.t_frame = 10_000
    assert gpu.gpu_seconds(gpu.GpuJob(config=long_cfg, video=str(clip_mp4), max_seconds=123)) == 123


@pytest.mark.slow
def test_launched_app_with_gradio_client(ctx, clip_mp4):
    from gradio_client import Client, handle_file

    import app

    demo = app.create_app(ctx)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, max_file_size="50mb")
    try:
        client = Client(url, verbose=False)
        res = client.predict(handle_file(str(clip_mp4)), "the black swan", *_advanced(ctx),
                             api_name="/segment")
        status, reasoning, attributes, word, heatmaps, tiles, thumbs, rows, number, overlay, files = res[:11]
        assert isinstance(attributes, str) and len(heatmaps) == 3 and len(tiles) == ctx.config.grounding.t_video
        table = rows["data"] if isinstance(rows, dict) else rows
        assert len(table) >= 1 and all(len(r) == 7 for r in table)
        zip_path = next(f for f in files if str(f).endswith(".zip"))
        with zipfile.ZipFile(zip_path) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".png"))
            assert len(names) == N_FRAMES
            with z.open(names[0]) as fh:
                assert Image.open(fh).size == (160, 90)
        assert any(str(f).endswith("masks_coco_rle.json") for f in files)
        # a failing action answers in the status line (no exception, nothing else replaced)
        failed = client.predict(7, api_name="/pick_candidate")
        assert "candidate 7 does not exist" in failed[0], failed[0]
        picked = client.predict(0, api_name="/pick_candidate")
        number = picked[3]["value"] if isinstance(picked[3], dict) else picked[3]
        assert "#0 chosen" in picked[0] and number == 0
    finally:
        demo.close()


def test_app_flags_and_safe_defaults(monkeypatch):
    import app

    args = app.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.share is False
    args = app.parse_args(["--port", "8000", "--share", "--backbone", "x/y"])
    assert args.port == 8000 and args.share and args.backbone == "x/y"


def test_only_ui_and_app_import_gradio():
    root = Path(__file__).resolve().parents[1] / "steerseg_core"
    offenders = [p for p in root.rglob("*.py") if "import gradio" in p.read_text() or "from gradio" in p.read_text()]
    assert offenders == []


def test_colour_scale_runs_from_blue_to_red():
    from steerseg_core import visualize
    from ui import segment

    stops = visualize.colormap_stops(5)
    assert len(stops) == 5 and all(len(c) == 7 and c.startswith("#") for c in stops)
    first, last = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (stops[0], stops[-1]))
    assert first[2] > first[0] and last[0] > last[2]  # jet: blue at 0, red at 1, as the heatmaps
    html = segment.colour_scale_html()
    assert "linear-gradient" in html and visualize.colormap_stops()[0] in html and "low attention" in html


def test_the_cache_janitor_removes_only_old_files(tmp_path):
    """Gradio's cleaner misses some copies under load; the janitor sweeps files older than the
    outputs age (and the folders they leave empty), never younger ones."""
    import os
    import time

    from ui.janitor import CacheJanitor, sweep

    old, new = tmp_path / "a" / "image.webp", tmp_path / "b" / "masks.zip"
    for p in (old, new):
        p.parent.mkdir()
        p.write_bytes(b"x")
    past = time.time() - 100
    os.utime(old, (past, past))  # an old modification time alone does not make a file old:
    assert sweep(tmp_path, 50) == 0  # its ctime (a copy's arrival in the cache) is now
    assert sweep(tmp_path, 50, now=time.time() + 60) == 2  # a minute later both are older than 50 s
    assert list(tmp_path.iterdir()) == []  # emptied folders removed, the root kept
    assert sweep(tmp_path / "missing", 1) == 0
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "young.png").write_bytes(b"y")
    janitor = CacheJanitor(tmp_path, 3600, every_s=3600)
    janitor.stop()  # the exit sweep: nothing young goes
    assert (tmp_path / "c" / "young.png").exists()
