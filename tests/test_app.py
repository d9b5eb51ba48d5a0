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
                      runs_dir=root / "runs", cache_dir=root / "cache")


def _advanced(ctx: AppContext) -> list:
    g, s = ctx.config.grounding, ctx.config.segment
    return [g.backbone, "seed-initialised (untrained)", True, True, 0.3, g.t_frame, g.t_video, "", 0.7, s.sam2]


@pytest.mark.slow
def test_handlers_end_to_end(ctx, clip_mp4, monkeypatch, tmp_path):
    import gradio as gr

    from ui import segment

    monkeypatch.setenv("STEERSEG_OUTPUTS", str(tmp_path / "outputs"))
    out = segment.run_segment(ctx, str(clip_mp4), "the black swan", *_advanced(ctx))
    (reasoning, attributes, word, note, heatmaps, strip, thumbs, rows, overlay, files, frame, _slider,
     _clicks, session) = out
    assert "tiny random-weight" in note and "seed-initialised" in note
    assert len(heatmaps) == 3 and heatmaps[0][0].shape == (90, 160, 3)
    assert strip.shape[0] == 160 and strip.ndim == 3
    assert len(thumbs) == len(rows) >= 1 and sum(r[-1] == "★" for r in rows) == 1
    assert Path(overlay).exists() and len(files) == 3
    with zipfile.ZipFile(files[0]) as z:
        pngs = sorted(n for n in z.namelist() if n.endswith(".png"))
    assert len(pngs) == N_FRAMES

    # pick another candidate (no model rerun), rescore with another alpha
    other = (session["result"].chosen + 1) % len(rows)
    thumbs2, rows2, *_rest, session = segment.pick_candidate(session, other)
    assert rows2[other][-1] == "★"
    *_r, session = segment.rescore(session, 1.0)
    best = max(range(len(session["result"].tracklets)), key=lambda i: session["result"].tracklets[i].s_frm)
    assert session["result"].chosen == best

    # click to correct: a positive click re-propagates the chosen tracklet
    class Evt:
        index = (80, 45)

    segment.show_frame(session, 5)
    img, text, session = segment.add_click(session, "positive", Evt())
    assert "frame 5" in text and img.shape == (90, 160, 3)
    *_r, session = segment.apply_clicks(session)
    chosen = session["result"].tracklets[session["result"].chosen]
    assert chosen.clicks and chosen.masks.shape == (N_FRAMES, 90, 160)

    with pytest.raises(gr.Error, match="Upload a video"):
        segment.run_segment(ctx, None, "x", *_advanced(ctx))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(gr.Error, match="bad.mp4"):
        segment.run_segment(ctx, str(bad), "the swan", *_advanced(ctx))
    with pytest.raises(gr.Error, match="does not exist|not available"):
        segment.run_segment(ctx, str(clip_mp4), "the swan", str(tmp_path / "no_model"), *_advanced(ctx)[1:])


@pytest.mark.slow
def test_launched_app_with_gradio_client(ctx, clip_mp4, monkeypatch, tmp_path):
    from gradio_client import Client, handle_file

    import app

    monkeypatch.setenv("STEERSEG_OUTPUTS", str(tmp_path / "outputs"))
    demo = app.create_app(ctx)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, max_file_size="50mb")
    try:
        client = Client(url, verbose=False)
        res = client.predict(handle_file(str(clip_mp4)), "the black swan", *_advanced(ctx),
                             api_name="/segment")
        reasoning, attributes, word, note, heatmaps, strip, thumbs, rows, overlay, files = res[:10]
        assert isinstance(attributes, str) and len(heatmaps) == 3
        table = rows["data"] if isinstance(rows, dict) else rows
        assert len(table) >= 1 and all(len(r) == 7 for r in table)
        zip_path = next(f for f in files if str(f).endswith(".zip"))
        with zipfile.ZipFile(zip_path) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".png"))
            assert len(names) == N_FRAMES
            with z.open(names[0]) as fh:
                assert Image.open(fh).size == (160, 90)
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
