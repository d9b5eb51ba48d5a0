"""Secrets and exposure: what the page shows never names the server's files or tokens; the app binds
to loopback without a public link unless asked; uploads cannot escape Gradio's folder and clients
cannot fetch server files; the Annotate tab requires a name and (with the env var) a password."""

from __future__ import annotations

import json
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from steerseg_core.config import SteerSegConfig
from steerseg_core.errors import public_message, redact_paths
from ui.context import AppContext

SEED = "seed-initialised (untrained)"


def test_redaction_of_paths_and_tokens():
    cases = {
        "'/tmp/pytest-of-x/deep/er/bad.mp4' is empty": "'bad.mp4' is empty",
        "no SAM2 weights (.safetensors or .pt) in folder /srv/models/empty": "in folder empty",
        "[Errno 13] Permission denied: '/root/.cache/steerseg/a.db'": "Permission denied: 'a.db'",
        "see ~/models/qwen/config.json": "see config.json",
        "cannot open /data/runs/ now": "cannot open runs now",
        "get it from https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct": "https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct",
        "rollout layers 14-27 of 3/4 frames": "rollout layers 14-27 of 3/4 frames",
        "token hf_abcdefghijklmnopqrstuvwxyz0123 was refused": "token *** was refused",
    }
    for text, expected in cases.items():
        assert expected in redact_paths(text), (text, redact_paths(text))
        assert "/tmp/" not in redact_paths(text) and "/root/" not in redact_paths(text)
    assert public_message(ValueError("'/a/b/c.mp4' broke")) == "'c.mp4' broke"


# --------------------------------------------------------------------------- handler messages

@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> Path:
    """A deep server-side folder whose path must never reach the page."""
    d = tmp_path_factory.mktemp("server-secret-location") / "srv" / "uploads" / "user42"
    d.mkdir(parents=True)
    return d


@pytest.fixture(scope="module")
def ctx(tiny_models, deep) -> AppContext:
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.grounding.frame_max_tokens, cfg.grounding.cot_max_new_tokens = 24, 8
    cfg.grounding.t_frame, cfg.grounding.t_video = 2, 2
    cfg.segment.sam2 = str(tiny_models / "sam2")
    return AppContext(config=cfg, db_path=deep / "db.sqlite", checkpoints_dir=deep / "ckpt",
                      runs_dir=deep / "runs", cache_dir=deep / "cache", outputs_dir=deep / "outputs")


@pytest.fixture(scope="module")
def small_mp4(deep) -> Path:
    path = deep / "clip.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = np.full((48, 64, 3), 40 * i, np.uint8)
            frame[10:30, 20:40] = 255
            out.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(s.encode())
    return path


def _args(ctx: AppContext, **over) -> list:
    g, s = ctx.config.grounding, ctx.config.segment
    a = dict(backbone=g.backbone, soft=SEED, cot=True, use_soft=True, alpha=0.3, tf=g.t_frame, tv=g.t_video,
             layers="", nms=0.7, sam2=s.sam2)
    a.update(over)
    return list(a.values())


def _error(fn, *args) -> str:
    import gradio as gr

    with pytest.raises(gr.Error) as err:
        fn(*args)
    return str(err.value.message if hasattr(err.value, "message") else err.value)


def _no_server_path(message: str, *secrets: Path) -> None:
    for secret in secrets:
        assert str(secret) not in message, message
    assert "/tmp/" not in message and "/root" not in message and "/work/" not in message, message


def test_segment_errors_never_show_server_paths(ctx, deep, small_mp4, tiny_models, tmp_path, monkeypatch):
    from ui import segment

    bad = deep / "holiday.mp4"
    bad.write_text("not a video")
    msg = _error(segment.run_segment, ctx, str(bad), "the swan", *_args(ctx))
    assert "'holiday.mp4' is not a readable video" in msg
    _no_server_path(msg, deep)

    empty = deep / "empty.mp4"
    empty.write_bytes(b"")
    _no_server_path(_error(segment.run_segment, ctx, str(empty), "the swan", *_args(ctx)), deep)

    missing_model = deep / "models" / "qwen-private"
    msg = _error(segment.run_segment, ctx, str(small_mp4), "the swan", *_args(ctx, backbone=str(missing_model)))
    assert "'qwen-private' does not exist" in msg
    _no_server_path(msg, deep)

    not_a_model = deep / "models" / "broken-model"
    not_a_model.mkdir(parents=True)
    (not_a_model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    msg = _error(segment.run_segment, ctx, str(small_mp4), "the swan", *_args(ctx, backbone=str(not_a_model)))
    assert "broken-model" in msg
    _no_server_path(msg, deep)

    # SAM2's loader names the folder in full (steerseg_core/segment): the page shows its name only
    empty_sam2 = deep / "models" / "sam2-empty"
    empty_sam2.mkdir(parents=True)
    msg = _error(segment.run_segment, ctx, str(small_mp4), "the swan", *_args(ctx, sam2=str(empty_sam2)))
    assert "sam2-empty" in msg
    _no_server_path(msg, deep, tiny_models)

    ctx2 = AppContext(config=SteerSegConfig.from_dict(ctx.config.to_dict()), checkpoints_dir=deep / "ckpt",
                      outputs_dir=deep / "outputs")
    ctx2.config.grounding.soft_prompts = str(deep / "ckpt" / "gone.safetensors")
    msg = _error(segment.run_segment, ctx2, str(small_mp4), "the swan", *_args(ctx, soft="x"))
    _no_server_path(msg, deep)
    assert not (deep / "outputs").exists() or not any((deep / "outputs").iterdir())  # nothing written


def test_annotate_messages_never_show_server_paths(ctx, deep, monkeypatch):
    from steerseg_core.annotation import store
    from ui.annotate import AnnotateHandlers

    from .test_annotation_store import _study

    sid = _study(ctx.db_path, n=3)
    with store.writing(ctx.db_path) as db:  # the item's clip has been moved away since
        db.execute("UPDATE samples SET clip_ref = ? WHERE study_id = ?", [str(deep / "moved" / "clip.mp4"), sid])
    h = AnnotateHandlers(ctx)
    view = h.open("ann", str(sid))
    assert "cannot show the clip" in view[-1] and "clip.mp4" in view[-1]
    _no_server_path(view[-1], deep)
    assert "no study" in h.open("ann", "999")[-1]
    _no_server_path(h.open("ann", "999")[-1], deep)
    md, _ = h.stats("999", 0.5)
    _no_server_path(md, deep)
    files, msg = h.export("999", 0.5)
    assert files is None
    _no_server_path(msg, deep)

    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", "correct horse battery staple")
    out = h.answer_true("ann", "wrong", str(sid), 1, "", None)
    assert "wrong or missing annotation password" in out[-1] and "horse" not in out[-1]
    out = h.answer_true("   ", "correct horse battery staple", str(sid), 1, "", None)
    assert "annotator name" in out[-1]  # a name is required
    assert store.get_judgements(ctx.db_path, sid) == []  # refused answers write nothing


# --------------------------------------------------------------------------- exposure

def test_safe_launch_defaults_and_spaces_binding(monkeypatch):
    import app

    for var in ("STEERSEG_HOST", "STEERSEG_PORT", "SPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    ctx = AppContext(config=SteerSegConfig())
    kw = app.launch_kwargs(app.parse_args([]), ctx)
    assert kw["server_name"] == "127.0.0.1" and kw["share"] is False and kw["show_error"] is False
    assert kw["max_file_size"] == 500 * 2**20

    launched = {}

    class FakeDemo:
        def queue(self, **k):
            launched["queue"] = k
            return self

        def launch(self, **k):
            launched.update(k)

    monkeypatch.setattr(app, "create_app", lambda c: FakeDemo())
    app.main([])
    assert launched["server_name"] == "127.0.0.1" and launched["share"] is False
    assert launched["queue"]["max_size"] >= 64
    monkeypatch.setenv("SPACE_ID", "user/steerseg")  # on Spaces the platform needs 0.0.0.0
    app.main([])
    assert launched["server_name"] == "0.0.0.0" and launched["share"] is False
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.setenv("STEERSEG_HOST", "0.0.0.0")  # exposed only when asked for
    app.main([])
    assert launched["server_name"] == "0.0.0.0"


def test_password_box_and_requirements_are_shown(monkeypatch, tmp_path):
    import gradio as gr

    from ui.annotate import build_annotate_tab, limits_text

    ctx = AppContext(config=SteerSegConfig(), db_path=tmp_path / "a.db", cache_dir=tmp_path / "c")
    monkeypatch.delenv("STEERSEG_ANNOTATE_PASSWORD", raising=False)
    assert "password" not in limits_text(ctx) and "annotator name" in limits_text(ctx)
    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", "pw-123456")
    assert "shared annotation password" in limits_text(ctx)
    with gr.Blocks() as demo:
        build_annotate_tab(ctx)
    boxes = [b for b in demo.blocks.values() if isinstance(b, gr.Textbox) and b.label == "Annotation password"]
    assert len(boxes) == 1 and boxes[0].visible and boxes[0].type == "password"
    assert "pw-123456" not in json.dumps(demo.get_config_file(), default=str)  # never sent to the page


@pytest.mark.slow
def test_launched_app_uploads_cannot_escape_and_server_files_cannot_be_fetched(ctx, deep, tmp_path, monkeypatch):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    import app

    monkeypatch.setenv("STEERSEG_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecretsecret1234")
    secret = deep / "private-notes.txt"
    secret.write_text("the server's own file")
    demo = app.create_app(ctx)
    app.configure_queue(demo, ctx)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            ssr_mode=False, show_error=False, max_file_size="50mb")
    try:
        page = httpx.get(url, timeout=30).text + httpx.get(f"{url}config", timeout=30).text
        assert "hf_secret" not in page and str(deep) not in page

        # an upload named ../../evil.mp4 lands inside Gradio's upload folder, as 'evil.mp4'
        r = httpx.post(f"{url}gradio_api/upload", files={"files": ("../../evil.mp4", b"not a video", "video/mp4")},
                       timeout=30)
        r.raise_for_status()
        stored = Path(r.json()[0])
        import gradio.utils as gu

        upload_root = Path(gu.get_upload_folder()).resolve()
        assert stored.resolve().is_relative_to(upload_root) and stored.name == "evil.mp4"
        assert not (upload_root.parent / "evil.mp4").exists() and not (upload_root.parent.parent / "evil.mp4").exists()

        client = Client(url, verbose=False, download_files=False)
        video = {"path": str(stored), "meta": {"_type": "gradio.FileData"}, "orig_name": "../../evil.mp4"}
        # the app answers in its status line (the first output), as the page shows it
        status = client.predict(video, "the swan", *_args(ctx), api_name="/segment")[0]
        assert "'evil.mp4' is not a readable video" in status
        _no_server_path(status, deep, upload_root)

        # a client cannot make the server read (or serve back) one of its own files
        for path in (str(secret), "/etc/passwd", str(upload_root / ".." / ".." / "etc" / "passwd")):
            forged = {"path": path, "meta": {"_type": "gradio.FileData"}}
            # Gradio either refuses the path or hands the handler a copy in its cache (it does so for files
            # under the temp folder, like `secret` here): either way nothing of the file reaches the client
            try:
                answer = str(client.predict(forged, "the swan", *_args(ctx), api_name="/segment")[0])
                assert "is not a readable video" in answer
            except AppError as err:
                answer = str(err)
            assert "server's own file" not in answer and "root:" not in answer
            fetched = httpx.get(f"{url}gradio_api/file={path}", timeout=30)
            assert fetched.status_code >= 400 and "root:" not in fetched.text and "server's own" not in fetched.text
    finally:
        demo.close()


def test_training_from_the_page_is_off_on_a_public_space(monkeypatch, tmp_path):
    from steerseg_core.config import service_from_env
    from ui.context import AppContext
    from ui.train import start_run

    service = service_from_env({"SPACE_ID": "someone/steerseg"})
    ctx = AppContext(runs_dir=tmp_path / "runs", checkpoints_dir=tmp_path / "ckpt", service_config=service)
    msg, _ = start_run(ctx, str(tmp_path), "x", 10, 5e-4, 4, "", "")
    assert "disabled on this public Space" in msg and not (tmp_path / "runs").exists()
