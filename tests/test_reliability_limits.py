"""Limits in one place: ``LimitsConfig`` (set from STEERSEG_MAX_* on a server) is what the app shows,
what its queue and widgets use, and what the core enforces — in the app's handlers and in the CLI
alike. Also: the model cache is bounded (no copy of every model ever asked for)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from steerseg_core import cli
from steerseg_core.config import LimitsConfig, SteerSegConfig
from steerseg_core.errors import InputError
from ui.context import AppContext

ENV = {"STEERSEG_MAX_UPLOAD_MB": "12.5", "STEERSEG_MAX_SECONDS": "42", "STEERSEG_MAX_FRAMES": "321",
       "STEERSEG_MAX_PIXELS": "2000000", "STEERSEG_MAX_EXPRESSION_CHARS": "77", "STEERSEG_MAX_CONCURRENT_JOBS": "2",
       "STEERSEG_MAX_WAITING_JOBS": "5", "STEERSEG_MAX_GIF_BYTES": "3145728", "STEERSEG_MAX_GIF_FRAMES": "99",
       "STEERSEG_MAX_DECODED_MB": "1234"}
EXPECTED = LimitsConfig(max_upload_mb=12.5, max_seconds=42.0, max_frames=321, max_pixels=2_000_000,
                        max_expression_chars=77, max_concurrent_jobs=2, max_waiting_jobs=5,
                        max_gif_bytes=3 * 2**20, max_gif_frames=99, max_decoded_mb=1234.0)


@pytest.fixture
def limits_env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return EXPECTED


def test_every_limit_has_an_environment_variable():
    names = {f"STEERSEG_{f.name.upper()}" for f in dataclasses.fields(LimitsConfig)}
    assert names == set(ENV)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(name in readme for name in names), "document every STEERSEG_MAX_* in README's options table"


def test_limits_from_the_environment(limits_env, monkeypatch):
    assert LimitsConfig.from_env() == limits_env
    assert SteerSegConfig.from_env().limits == limits_env
    assert __import__("app").context_from_env().config.limits == limits_env
    assert LimitsConfig.from_env({}) == LimitsConfig()
    for value, match in [("abc", "STEERSEG_MAX_FRAMES must be a whole number, got 'abc'"),
                         ("2.5", "whole number"), ("0", "greater than 0"), ("-3", "greater than 0")]:
        with pytest.raises(InputError, match=match):
            LimitsConfig.from_env({"STEERSEG_MAX_FRAMES": value})
    with pytest.raises(InputError, match="STEERSEG_MAX_SECONDS must be a number"):
        LimitsConfig.from_env({"STEERSEG_MAX_SECONDS": "ten"})
    with pytest.raises(InputError, match="greater than 0"):
        LimitsConfig.from_env({"STEERSEG_MAX_SECONDS": "nan"})


def test_the_app_shows_and_uses_the_limits(limits_env, tmp_path):
    import gradio as gr

    import app
    from ui import annotate, segment

    ctx = AppContext(config=SteerSegConfig.from_env(), db_path=tmp_path / "a.db", checkpoints_dir=tmp_path / "c",
                     runs_dir=tmp_path / "r", cache_dir=tmp_path / "g")
    text = segment.limits_text(ctx)
    for shown in ("12.5 MB", "42 s", "321 frames", "2.0 MP", "3 MB", "99 frames", "77 characters",
                  "2 segmentations run at a time", "up to 5 more wait", "1,234 MB"):
        assert shown in text, (shown, text)
    assert "3 MB" in annotate.limits_text(ctx)

    demo = app.create_app(ctx)
    markdown = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown)]
    assert text in markdown and annotate.limits_text(ctx) in markdown  # both tabs show them
    expression = next(b for b in demo.blocks.values() if isinstance(b, gr.Textbox) and b.label == "expression")
    assert expression.max_length == 77
    gpu = [f for f in demo.fns.values() if f.concurrency_id == "gpu"]
    assert {"segment", "apply_clicks", "compare_readouts", "counterfactual_attributes"} <= {f.api_name for f in gpu}
    assert len(gpu) == 5  # + the tiny try-out
    assert all(f.concurrency_limit == 2 and f.validator is not None for f in gpu)
    assert app.launch_kwargs(app.parse_args([]), ctx)["max_file_size"] == int(12.5 * 2**20)  # bytes, as the core counts


def test_busy_validator_refuses_when_the_line_is_full():
    from ui.segment import WaitingLine, busy_validator

    ctx = AppContext(config=SteerSegConfig())
    ctx.config.limits.max_waiting_jobs = 2
    line = WaitingLine()
    validate = busy_validator(ctx, line)
    ok = validate("video.mp4", "the swan", 0.3)
    assert all(v["is_valid"] for v in ok) and line.waiting() == 1
    assert validate("video.mp4", "the swan", 0.3)[0]["is_valid"] and line.waiting() == 2
    refused = validate("video.mp4", "the swan", 0.3)
    assert refused[0]["is_valid"] is False and "Busy: 2 segmentation requests" in refused[0]["message"]
    assert "limit is 2" in refused[0]["message"] and len(refused) == 3 and line.waiting() == 2
    assert validate("session")["is_valid"] is False  # one input: one verdict
    line.start()  # the first admitted request begins: one place frees
    assert line.waiting() == 1 and validate("session")["is_valid"] is True
    stale = WaitingLine(stale_s=0.0)  # a request cancelled while waiting is forgotten in time
    assert stale.admit(1) == 0 and stale.waiting() == 0
    line.start(), line.start(), line.start()  # more starts than admissions (direct calls): never negative
    assert line.waiting() == 0


@pytest.fixture(scope="module")
def clip8(tmp_path_factory) -> Path:
    """8 frames, 64×48, 12 fps."""
    path = tmp_path_factory.mktemp("clips") / "eight.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=12)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(8):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")))
        out.mux(s.encode())
    return path


@pytest.mark.parametrize(("env", "expression", "message"), [
    ({"STEERSEG_MAX_FRAMES": "5"}, "the swan", "'eight.mp4' has 8 frames; the limit is 5"),
    ({"STEERSEG_MAX_SECONDS": "0.25"}, "the swan", "s long; the limit is 0.25 s"),
    ({"STEERSEG_MAX_PIXELS": "1000"}, "the swan", r"64×48 \(3,072 pixels per frame\); the limit is 1,000"),
    ({"STEERSEG_MAX_UPLOAD_MB": "0.001"}, "the swan", "the upload limit is 0.001 MB"),
    ({"STEERSEG_MAX_EXPRESSION_CHARS": "5"}, "the swan", r"too long \(8 characters\); the limit is 5"),
    ({"STEERSEG_MAX_FRAMES": "lots"}, "the swan", "STEERSEG_MAX_FRAMES must be a whole number"),
])
def test_the_cli_obeys_the_limits(clip8, tmp_path, monkeypatch, capsys, env, expression, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    code = cli.main(["segment", str(clip8), expression, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ")
    assert __import__("re").search(message, err), err
    assert not out.exists()  # refused before any model or output


def test_the_app_handler_obeys_the_limits(clip8, tmp_path, monkeypatch):
    import gradio as gr

    from ui import segment

    ctx = AppContext(config=SteerSegConfig(limits=LimitsConfig(max_frames=5)), outputs_dir=tmp_path / "outputs")
    args = ["", segment.SEED_INIT, True, True, 0.3, 2, 2, "", 0.7, ""]
    with pytest.raises(gr.Error, match="has 8 frames; the limit is 5"):
        segment.run_segment(ctx, str(clip8), "the swan", *args)
    ctx.config.limits = LimitsConfig(max_expression_chars=4)
    with pytest.raises(gr.Error, match="too long"):
        segment.run_segment(ctx, str(clip8), "the swan", *args)
    assert not (tmp_path / "outputs").exists()


def test_model_cache_keeps_at_most_one_model_of_each_kind(tiny_models, monkeypatch):
    from steerseg_core import pipeline
    from steerseg_core.config import GroundingConfig

    pipeline.clear_model_cache()
    try:
        a = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=16, soft_prompts="seed")
        b = GroundingConfig(backbone=str(tiny_models / "qwen2_vl"), frame_max_tokens=16, soft_prompts="seed")
        g1 = pipeline.cached_grounder(a)
        assert pipeline.cached_grounder(a).adapter is g1.adapter  # reused, not reloaded
        assert pipeline.cached_grounder(dataclasses.replace(a, t_frame=3)).adapter is g1.adapter
        pipeline.cached_grounder(b)
        kinds = [k[0] for k in pipeline.cached_models()]
        assert kinds.count("lvlm") == 1 and kinds.count("soft") == 1  # a's model and its prompts are gone
        # soft prompts off, then on: the seed prompts are made for this backbone (not a stale None)
        off = pipeline.cached_grounder(dataclasses.replace(b, soft_prompts=None))
        on = pipeline.cached_grounder(b)
        assert off.soft_prompts is None and on.soft_prompts is not None

        sam = str(tiny_models / "sam2")
        s1 = pipeline.cached_sam2(sam, "cpu")
        assert pipeline.cached_sam2(sam, "cpu") is s1
        pipeline.cached_sam2(sam + "/", "cpu")  # another spec: the first one is dropped
        assert [k[0] for k in pipeline.cached_models()].count("sam2") == 1
    finally:
        pipeline.clear_model_cache()
