"""Hostile and broken input not covered by the per-module tests (test_video, test_export,
test_soft_prompts, test_segment_sam2, test_annotation_sources/studies, test_prompts cover the rest):
real 10-hour and 8K video headers refused before decoding (core, app, CLI), GIF bombs as annotation
previews, pickles renamed .bin/.pt wherever weights are read, malformed dataset JSON, and
property-based tests of the video reader (lossless round trip; damaged bytes never raise anything
but a ``VideoError``)."""

from __future__ import annotations

import os
import pickle
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from steerseg_core import cli
from steerseg_core import video as video_mod
from steerseg_core.config import LimitsConfig, SteerSegConfig
from steerseg_core.errors import CheckpointError, InputError, ModelLoadError, VideoError
from steerseg_core.video import load_clip, probe_video
from ui.context import AppContext


def _forbid_decoding(monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("decoded although the header already breaks a limit")

    monkeypatch.setattr(video_mod, "_decode_video", refuse)
    monkeypatch.setattr(video_mod, "_decode_gif", refuse)
    monkeypatch.setattr(video_mod, "_load_images", refuse)


def ten_hour_mp4(path: Path, container: str = "mp4") -> Path:
    """Two black frames, five hours apart: a 10-hour clip in a few kB."""
    with av.open(str(path), "w", format=container) as c:
        s = c.add_stream("libx264", rate=Fraction(1, 18000))
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(2):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def eight_k_mp4(path: Path) -> Path:
    """One black 7680×4320 frame (≈100 kB)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 7680, 4320, "yuv420p"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((4320, 7680, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.fixture(scope="module")
def huge(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("huge")
    return {"10h.mp4": ten_hour_mp4(d / "10h.mp4"), "10h.mkv": ten_hour_mp4(d / "10h.mkv", "matroska"),
            "8k.mp4": eight_k_mp4(d / "8k.mp4")}


@pytest.mark.parametrize(("name", "message"), [
    ("10h.mp4", "'10h.mp4' is 36,000.0 s long; the limit is 600 s"),
    ("10h.mkv", "'10h.mkv' is 36,000.0 s long; the limit is 600 s"),
    ("8k.mp4", "'8k.mp4' is 7680×4320 (33,177,600 pixels per frame); the limit is 8,294,400 pixels"),
])
def test_huge_headers_are_refused_before_decoding_everywhere(huge, name, message, monkeypatch, tmp_path, capsys):
    import gradio as gr

    from ui import segment

    path = huge[name]
    assert path.stat().st_size < 200_000  # tiny files that claim huge clips
    _forbid_decoding(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(VideoError) as err:
        load_clip(path)
    assert message in str(err.value) and time.perf_counter() - start < 2.0
    # the app's handler: the same message, nothing written
    ctx = AppContext(config=SteerSegConfig(), outputs_dir=tmp_path / "outputs")
    with pytest.raises(gr.Error, match="limit is"):
        segment.run_segment(ctx, str(path), "the swan", "", segment.SEED_INIT, True, True, 0.3, 2, 2, "", 0.7, "")
    assert not (tmp_path / "outputs").exists()
    # the CLI: one line, exit 2, no output folder
    assert cli.main(["segment", str(path), "the swan", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_higher_limit_lets_the_8k_header_through_to_the_memory_check(huge):
    limits = LimitsConfig(max_pixels=8000 * 5000)
    info = probe_video(huge["8k.mp4"], limits)
    assert (info.width, info.height, info.num_frames) == (7680, 4320, 1)


@pytest.mark.parametrize(("args", "match"), [((20000, 20000, 1), "20000×20000"),
                                             ((64, 64, 5000, 2), "5,000 frames; the limit for GIFs is 2,000")])
def test_gif_bombs_as_annotation_previews_are_refused_before_decoding(tmp_path, monkeypatch, args, match):
    from steerseg_core.annotation.gif import clip_gif

    from .test_video import tiny_gif

    bomb = tmp_path / "clips" / "bomb.gif"
    bomb.parent.mkdir()
    bomb.write_bytes(tiny_gif(*args))
    monkeypatch.setattr(Image.Image, "convert", lambda *a, **k: pytest.fail("decoded a GIF bomb"))
    start = time.perf_counter()
    with pytest.raises(VideoError, match=match):
        clip_gif(bomb, tmp_path / "cache")
    assert time.perf_counter() - start < 2.0 and not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- pickles renamed

class _Payload:
    """Creates a marker file when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickles_renamed_bin_or_pt_are_never_unpickled(tiny_models, tmp_path):
    from steerseg_core.grounding.lvlm import load_adapter
    from steerseg_core.grounding.soft_prompts import SoftPrompts
    from steerseg_core.segment import build_sam2

    marker = tmp_path / "pwned"
    payload = pickle.dumps({"model.embed_tokens.weight": _Payload(marker)}, protocol=2)
    # a backbone folder whose weights are a pickle (pytorch_model.bin) instead of safetensors
    evil = tmp_path / "evil-backbone"
    shutil.copytree(tiny_models / "qwen2_5_vl", evil)
    for p in evil.glob("*.safetensors*"):
        p.unlink()
    (evil / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(ModelLoadError, match="'evil-backbone' cannot be loaded"):
        load_adapter(str(evil))
    for name in ("prompts.bin", "prompts.pt"):
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(CheckpointError, match="never opened"):
            SoftPrompts.load(tmp_path / name)
    (tmp_path / "sam2_hiera_tiny.bin").write_bytes(payload)
    with pytest.raises((CheckpointError, ModelLoadError)):
        build_sam2(str(tmp_path / "sam2_hiera_tiny.bin"), device="cpu")
    assert not marker.exists()
    # the payload is live: a plain unpickle would have run it
    pickle.loads(pickle.dumps(_Payload(tmp_path / "probe"))).close()
    assert (tmp_path / "probe").exists()


def test_missing_model_folders_name_the_folder_only(tmp_path):
    from steerseg_core.grounding.lvlm import load_adapter
    from steerseg_core.segment import build_sam2

    with pytest.raises(ModelLoadError, match="backbone folder 'nowhere' does not exist") as err:
        load_adapter(str(tmp_path / "models" / "nowhere"))
    assert str(tmp_path) not in str(err.value)
    with pytest.raises(ModelLoadError, match="not found"):
        build_sam2(str(tmp_path / "models" / "sam2_hiera_large.pt"), device="cpu")


# --------------------------------------------------------------------------- malformed dataset JSON

@pytest.mark.parametrize(("name", "content", "match"), [
    ("expressions.json", "[1, 2", "'expressions.json' is not valid JSON"),
    ("expressions.json", '{"clips": 3}', "needs a 'clips' object"),
    ("expressions.json", '{"clips": {"a": {"expressions": 5}}}', "clip 'a' needs an 'expressions' list"),
    ("meta_expressions.json", '{"videos": {"a": ', "not valid JSON"),
])
def test_malformed_training_dataset_json_is_a_clear_input_error(tmp_path, name, content, match):
    from steerseg_core.training.data import open_dataset

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations").mkdir()
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError) as err:
        open_dataset(tmp_path)
    assert match in str(err.value), str(err.value)


@pytest.mark.parametrize(("bench", "rel"), [
    ("mevis", "valid_u/meta_expressions.json"), ("revos", "meta_expressions_valid_.json"),
    ("reasonvos", "meta_expressions.json"), ("refytvos", "meta_expressions/valid/meta_expressions.json"),
])
def test_malformed_benchmark_json_is_a_clear_input_error(tmp_path, bench, rel):
    from steerseg_core.datasets import open_benchmark

    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text('{"videos": {"a": ')
    with pytest.raises(InputError, match="not valid JSON"):
        list(open_benchmark(bench, tmp_path).expressions())


# --------------------------------------------------------------------------- video reader properties

frames_strategy = st.tuples(st.integers(1, 4), st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames_strategy, st.sampled_from(["png", "gif"]))
def test_reader_round_trip_property(tmp_path, spec, fmt):
    t, h, w, seed = spec
    frames = np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    folder = tmp_path / f"clip-{t}-{h}-{w}-{seed}-{fmt}"
    folder.mkdir()
    if fmt == "png":
        for i, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"{i:05d}.png")
        clip = load_clip(folder)
        assert clip.frame_names == tuple(f"{i:05d}" for i in range(t))
        np.testing.assert_array_equal(clip.frames, frames)  # lossless, in order
    else:
        imgs = [Image.fromarray(f) for f in frames]
        imgs[0].save(folder / "c.gif", save_all=True, append_images=imgs[1:], duration=50, disposal=1)
        clip = load_clip(folder / "c.gif")
        with Image.open(folder / "c.gif") as img:
            n = getattr(img, "n_frames", 1)  # Pillow merges identical consecutive frames
        assert clip.frames.shape == (n, h, w, 3) and clip.frames.dtype == np.uint8
    assert clip.fps > 0 and clip.num_frames == clip.frames.shape[0]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    frames = (np.linspace(0, 255, 6)[:, None, None, None] + rng.integers(0, 40, (6, 36, 48, 3))).clip(0, 255)
    frames = frames.astype(np.uint8)
    out: dict[str, bytes] = {}
    for name, codec in (("a.mp4", "libx264"), ("a.webm", "libvpx-vp9")):
        with av.open(str(d / name), "w") as c:
            s = c.add_stream(codec, rate=12)
            s.width, s.height, s.pix_fmt = 48, 36, "yuv420p"
            for f in frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
        out[name] = (d / name).read_bytes()
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(d / "a.gif", save_all=True, append_images=imgs[1:], duration=80)
    out["a.gif"] = (d / "a.gif").read_bytes()
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["a.mp4", "a.webm", "a.gif"]), data=st.data())
def test_damaged_files_never_raise_anything_but_a_video_error(sources, tmp_path, name, data):
    raw = bytearray(sources[name])
    cut = data.draw(st.one_of(st.integers(0, len(raw)), st.integers(len(raw) * 3 // 4, len(raw))), label="keep bytes")
    raw = raw[:cut]
    for _ in range(data.draw(st.integers(0, 8), label="flips")):
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    path = tmp_path / f"damaged-{os.getpid()}-{cut}-{name}"
    path.write_bytes(bytes(raw))
    try:
        clip = load_clip(path, LimitsConfig(max_frames=100, max_seconds=60))
    except VideoError as err:
        assert path.name in str(err) and str(tmp_path) not in str(err)
    else:
        assert clip.frames.ndim == 4 and clip.frames.shape[-1] == 3 and clip.frames.dtype == np.uint8
        assert 1 <= clip.num_frames <= 100 and clip.frames.shape[1:3] == (36, 48)
    finally:
        path.unlink()


@pytest.mark.parametrize("name", ["a.mp4", "a.webm", "a.gif"])
def test_header_byte_sweep_never_raises_anything_but_a_video_error(sources, tmp_path, name):
    """Every byte of the first 512 zeroed in turn, in a file cut after its first frame data: a
    deterministic companion to the property test above (which found a webm whose damaged header
    left no codec context and made the reader raise AttributeError)."""
    base = bytearray(sources[name][: min(len(sources[name]), 600)])
    path = tmp_path / f"sweep-{name}"
    outcomes = {"clip": 0, "refused": 0}
    for i in range(min(512, len(base))):
        raw = bytearray(base)
        raw[i] = 0
        path.write_bytes(bytes(raw))
        try:
            clip = load_clip(path, LimitsConfig(max_frames=100, max_seconds=60))
        except VideoError as err:
            assert path.name in str(err)
            outcomes["refused"] += 1
        else:
            assert clip.frames.dtype == np.uint8 and clip.num_frames >= 1
            outcomes["clip"] += 1
    assert outcomes["refused"] > 0


# --------------------------------------------------------------------------- probe set II

def test_a_failing_item_in_generate_is_recorded_and_the_batch_goes_on(tmp_path, data_dir):
    """Model code raising a plain exception (as the processor did on control-token text) marks that
    item failed with its reason; the other items are generated, and a rerun retries only it."""
    from steerseg_core.annotation import create_study, generate_attributes, store

    from .test_annotation_helpers import colour_cot, make_reasonvos

    db = tmp_path / "a.db"
    st = create_study(db, make_reasonvos(tmp_path / "rv"), name="s", n=4, seed=0)
    bad = store.get_samples(db, st.id)[1]
    calls: list[str] = []

    def cot(clip, expression):
        calls.append(expression)
        if expression == bad.expression:
            raise ValueError("Mismatch in `image` token count between text and `input_ids`")
        return colour_cot(clip, expression)

    report = generate_attributes(db, st.id, cot)
    assert (report.done, report.failed) == (3, 1) and len(calls) == 4
    assert "ValueError: Mismatch" in report.errors[0] and "item 2" in report.errors[0]
    samples = store.get_samples(db, st.id)
    assert [s.ready for s in samples] == [True, False, True, True]
    again = generate_attributes(db, st.id, cot)  # the rerun goes past it again
    assert (again.done, again.failed, again.already) == (0, 1, 3)


def test_exported_csv_cells_are_never_formulas(tmp_path):
    import csv

    from steerseg_core.annotation import store
    from steerseg_core.annotation.export import export_study
    from steerseg_core.files import spreadsheet_safe

    from .test_annotation_store import _study

    db = tmp_path / "a.db"
    sid = _study(db, n=2)
    hostile = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    for i, text in enumerate(hostile[:2]):
        store.record_judgement(db, sid, i, f"=cmd|' /C calc'!A{i}", "True", text)
    paths = export_study(db, sid, tmp_path / "out", chart=False)
    for kind in ("judgements_csv", "stats_csv"):
        with paths[kind].open(newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (kind, cell)
                    assert not (cell.startswith("-") and not _is_number(cell)), (kind, cell)
    for text in hostile:
        assert spreadsheet_safe(text) == "'" + text
    assert spreadsheet_safe("plain note") == "plain note"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_an_over_long_note_is_refused_not_cut(tmp_path):
    from steerseg_core.annotation import flow, store
    from steerseg_core.annotation.records import MAX_NOTE_CHARS

    from .test_annotation_store import _study

    db = tmp_path / "a.db"
    sid = _study(db, n=2)
    with pytest.raises(InputError, match=f"at most {MAX_NOTE_CHARS:,}.*nothing was saved"):
        flow.answer(db, sid, "ann", 0, "True", note="x" * 1_000_000, cache_dir=tmp_path / "c")
    assert store.get_judgements(db, sid) == []
    view = flow.answer(db, sid, "ann", 0, "True", note="y" * MAX_NOTE_CHARS, cache_dir=tmp_path / "c")
    assert "saved True" in view.message
    assert store.get_judgements(db, sid)[0].note == "y" * MAX_NOTE_CHARS  # what was said saved, all of it


def test_layer_range_beyond_the_model_is_a_message(tiny_models, tmp_path, capsys):
    from steerseg_core.config import GroundingConfig, resolve_layers
    from steerseg_core.grounding.grounder import Grounder
    from steerseg_core.grounding.lvlm import load_adapter

    with pytest.raises(InputError, match="outside the model's layers 0-3"):
        resolve_layers((5, 999), 4)
    adapter = load_adapter(str(tiny_models / "qwen2_5_vl"))
    with pytest.raises(InputError, match="rollout layers 5-999"):
        Grounder(adapter, GroundingConfig(backbone=adapter.name, layers=(5, 999)))


def test_soft_prompts_with_zero_rows_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    from steerseg_core.grounding.soft_prompts import SoftPrompts

    path = tmp_path / "empty.safetensors"
    save_file({"frame": torch.zeros(0, 16), "video": torch.zeros(0, 16)}, str(path))
    with pytest.raises(CheckpointError, match="at least one row"):
        SoftPrompts.load(path)


def test_trainer_state_without_step_is_a_checkpoint_error(tmp_path):
    import json

    import torch

    from steerseg_core.grounding.soft_prompts import SoftPrompts
    from steerseg_core.training import checkpoint as ckpt

    soft = SoftPrompts(torch.randn(4, 8), torch.randn(4, 8))
    opt = torch.optim.AdamW(soft.parameters(), lr=1e-3)
    folder = ckpt.save_checkpoint(tmp_path / "ckpt", 5, soft, opt, None, {})
    state = json.loads((folder / "trainer_state.json").read_text())
    del state["step"]
    (folder / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match='no valid "step"'):
        ckpt.load_checkpoint(folder)


def test_a_bad_sam2_spec_is_refused_before_any_model_work(tiny_models, monkeypatch):
    from steerseg_core import pipeline

    def no_model_work(*_a, **_k):
        raise AssertionError("grounding ran although the SAM2 spec was already known to be bad")

    monkeypatch.setattr(pipeline, "cached_grounder", no_model_work)
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    from steerseg_core.types import Clip

    clip = Clip(frames=np.zeros((2, 32, 32, 3), np.uint8), fps=24.0, source="x")
    for bad in ("huge", "/no/such/sam2.pt", "facebook/not-a-sam2"):
        cfg.segment.sam2 = bad
        with pytest.raises(ModelLoadError, match="SAM2"):
            pipeline.SteerSeg(cfg).run(clip, "the dog")


def test_sixteen_bit_masks_score_by_the_labels_present(tmp_path):
    from steerseg_core.eval.folder_eval import evaluate_folders

    gt, pred = tmp_path / "gt" / "seq", tmp_path / "pred" / "seq"
    gt.mkdir(parents=True)
    pred.mkdir(parents=True)
    for t in range(4):
        m = np.zeros((40, 60), np.uint16)
        m[10:30, 10 + t:40 + t] = 65535
        Image.fromarray(m).save(gt / f"{t:05d}.png")  # 16-bit 0 / 65535
        Image.fromarray((m > 0).astype(np.uint8) * 255).save(pred / f"{t:05d}.png")
    assert Image.open(gt / "00000.png").mode.startswith("I")
    report = evaluate_folders(tmp_path / "gt", tmp_path / "pred", workers=1)
    assert report["num_objects"] == 1 and report["J&F-Mean"] == pytest.approx(1.0)

    labelled = np.zeros((4, 40, 60), np.int32)  # labels 7 and 300 only: two objects, not 300
    labelled[:, :10, :10], labelled[:, 20:, 20:] = 7, 300
    from steerseg_core.eval.folder_eval import ground_truth_ids

    assert ground_truth_ids(labelled) == [7, 300]
    noise = np.arange(40 * 60, dtype=np.int32).reshape(1, 40, 60)
    with pytest.raises(InputError, match="at most 255 objects"):
        ground_truth_ids(noise)
