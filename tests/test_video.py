"""steerseg_core.video: reading every supported input, the limits, and clear errors for bad input.

Videos are encoded at test time with PyAV from real DAVIS frames (downsized, few frames); the
folder tests read the real DAVIS blackswan clip in place.
"""

from __future__ import annotations

import shutil
import struct
import time
import unicodedata
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from steerseg_core import video as video_mod
from steerseg_core.config import LimitsConfig
from steerseg_core.errors import InputError, VideoError
from steerseg_core.video import (
    VideoInfo,
    effective_fps,
    iter_frame_paths,
    load_clip,
    probe_video,
    sample_indices,
    validate_expression,
)

W, H, T, FPS = 96, 54, 8, 12


@pytest.fixture(scope="module")
def blackswan(data_dir: Path) -> Path:
    """The real DAVIS blackswan frames (the committed cut: 16 JPEGs, 854×480)."""
    return data_dir / "davis2016" / "JPEGImages" / "480p" / "blackswan"


@pytest.fixture(scope="module")
def small_frames(blackswan: Path) -> np.ndarray:
    """8 real blackswan frames at 96×54, RGB uint8."""
    src = blackswan
    return np.stack(
        [np.asarray(Image.open(src / f"{i:05d}.jpg").convert("RGB").resize((W, H), Image.BILINEAR)) for i in range(T)]
    )


def encode(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, fps: float = FPS,
           options: dict | None = None, rotation: int | None = None) -> Path:
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def expect_error(exc_type: type[Exception], match: str, fn, *args, **kwargs) -> str:
    """Call fn, expect exc_type matching `match`; the message must not reveal directories."""
    with pytest.raises(exc_type, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "/tmp" not in msg and "/work" not in msg, msg
    return msg


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any decode step fail the test: limits must be refused from headers alone."""

    def boom(*_a, **_k):
        raise AssertionError("decoded although the headers already broke a limit")

    for name in ("_decode_video", "_decode_gif", "_load_images", "_read_image"):
        monkeypatch.setattr(video_mod, name, boom)


# --------------------------------------------------------------------------- formats

FORMATS = [
    ("clip.mp4", "libx264", "yuv420p"),
    ("clip.mov", "libx264", "yuv420p"),
    ("clip.mkv", "libx264", "yuv420p"),
    ("clip.webm", "libvpx-vp9", "yuv420p"),
    ("vp8.webm", "libvpx", "yuv420p"),
    ("clip.avi", "mjpeg", "yuvj420p"),
    ("mpeg4.avi", "mpeg4", "yuv420p"),
]


@pytest.mark.parametrize(("name", "codec", "pix_fmt"), FORMATS)
def test_video_formats_probe_and_decode(tmp_path, small_frames, name, codec, pix_fmt):
    path = encode(tmp_path / name, small_frames, codec, pix_fmt)
    info = probe_video(path)
    assert info == VideoInfo(str(path), "file", T, float(FPS), W, H, pytest.approx(T / FPS, abs=0.02))
    clip = load_clip(path)
    assert clip.frames.shape == (T, H, W, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == FPS and clip.source == str(path) and clip.frame_names == ()
    assert clip.names()[:2] == ("00000", "00001")
    # Lossy codecs, but the content (and RGB channel order) must survive.
    diff = np.abs(clip.frames.astype(int) - small_frames.astype(int)).mean()
    assert diff < 12, diff
    np.testing.assert_allclose(clip.frames.mean(axis=(0, 1, 2)), small_frames.mean(axis=(0, 1, 2)), atol=8)


def test_gif_probe_and_decode(tmp_path, small_frames):
    path = tmp_path / "clip.gif"
    imgs = [Image.fromarray(f) for f in small_frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=100, loop=0)
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (T, W, H)
    assert info.fps == pytest.approx(10.0) and info.duration_s == pytest.approx(0.8)
    clip = load_clip(path)
    assert clip.frames.shape == (T, H, W, 3) and clip.fps == pytest.approx(10.0)
    assert np.abs(clip.frames.astype(int) - small_frames.astype(int)).mean() < 20
    assert load_clip(path, max_side=48).frames.shape == (T, 27, 48, 3)


def test_gif_detected_by_content_not_extension(tmp_path, small_frames):
    path = tmp_path / "actually_a_gif.mp4"
    imgs = [Image.fromarray(f) for f in small_frames[:3]]
    imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=50)
    assert load_clip(path).frames.shape == (3, H, W, 3)


def test_real_davis_folder(blackswan):
    folder = blackswan
    info = probe_video(folder)
    assert info == VideoInfo(str(folder), "folder", 16, 24.0, 854, 480, pytest.approx(16 / 24))
    clip = load_clip(folder)
    assert clip.frames.shape == (16, 480, 854, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == 24.0 and clip.source == str(folder)
    assert clip.frame_names == tuple(f"{i:05d}" for i in range(16)) == clip.names()
    np.testing.assert_array_equal(clip.frames[7], np.asarray(Image.open(folder / "00007.jpg").convert("RGB")))


def test_folder_fps_and_max_side(blackswan):
    folder = blackswan
    assert probe_video(folder, fps=10).duration_s == pytest.approx(1.6)
    clip = load_clip(folder, max_side=214, fps=30.0)
    assert clip.fps == 30.0 and clip.frames.shape == (16, 120, 214, 3)
    expect_error(InputError, "fps", load_clip, folder, fps=0)
    expect_error(InputError, "max_side", load_clip, folder, max_side=0)


def test_folder_natural_order_and_ignores_other_files(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for value, name in [(10, "frame2.png"), (20, "frame10.png"), (30, "frame1.png")]:
        Image.fromarray(np.full((6, 8, 3), value, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "sub").mkdir()
    clip = load_clip(folder)
    assert clip.frame_names == ("frame1", "frame2", "frame10")
    assert [p.name for p in iter_frame_paths(folder)] == ["frame1.png", "frame2.png", "frame10.png"]
    assert clip.frames[:, 0, 0, 0].tolist() == [30, 10, 20]


def test_max_side_on_video_keeps_aspect_and_never_enlarges(tmp_path, small_frames):
    path = encode(tmp_path / "c.mp4", small_frames, "libx264", "yuv420p")
    assert load_clip(path, max_side=48).frames.shape == (T, 27, 48, 3)
    assert load_clip(path, max_side=1000).frames.shape == (T, H, W, 3)


def test_display_rotation_is_applied(tmp_path):
    frames = np.zeros((3, 54, 96, 3), np.uint8)
    frames[:, :10, :20] = 255  # white block in the stored top-left corner
    path = encode(tmp_path / "phone.mp4", frames, "libx264", "yuv420p", rotation=90)
    clip = load_clip(path)
    # 90° counter-clockwise: the stored top-left corner ends up bottom-left.
    assert clip.frames.shape == (3, 96, 54, 3)
    assert clip.frames[1, -5, 3].min() > 200 and clip.frames[1, 3, 3].max() < 50


# --------------------------------------------------------------------------- single frames


def test_single_frame_inputs_are_clips_of_one(tmp_path, small_frames):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.fromarray(small_frames[0]).save(folder / "00000.png")
    clip = load_clip(folder)
    assert clip.frames.shape == (1, H, W, 3) and clip.frame_names == ("00000",)
    np.testing.assert_array_equal(clip.frames[0], small_frames[0])

    mp4 = encode(tmp_path / "one.mp4", small_frames[:1], "libx264", "yuv420p")
    assert probe_video(mp4).num_frames == 1
    assert load_clip(mp4).frames.shape == (1, H, W, 3)

    still = tmp_path / "still.jpg"
    Image.fromarray(small_frames[0]).save(still)
    assert load_clip(still).frames.shape == (1, H, W, 3)


# --------------------------------------------------------------------------- bad inputs


def test_missing_path(tmp_path):
    msg = expect_error(VideoError, "does not exist", load_clip, tmp_path / "nowhere" / "clip.mp4")
    assert "'clip.mp4'" in msg
    expect_error(VideoError, "does not exist", probe_video, tmp_path / "gone.mp4")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    expect_error(VideoError, r"'empty.mp4' is empty \(0 bytes\)", load_clip, tmp_path / "empty.mp4")


def test_text_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    expect_error(VideoError, "'notes.mp4' is not a readable video", load_clip, path)


def test_png_renamed_mp4(tmp_path, data_dir):
    path = tmp_path / "mask.mp4"
    shutil.copy(data_dir / "davis2016/Annotations/480p/blackswan/00000.png", path)
    expect_error(VideoError, "'mask.mp4' is not a supported video: it contains a PNG image", load_clip, path)


def test_truncated_mp4_cannot_open(tmp_path, small_frames):
    # Default mp4 muxing puts the index (moov) at the end: half a file cannot be opened.
    full = encode(tmp_path / "full.mp4", small_frames, "libx264", "yuv420p").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full[: len(full) // 2])
    expect_error(VideoError, "'cut.mp4' is not a readable video: the file is corrupt", load_clip, cut)


def test_truncated_faststart_mp4_opens_but_is_refused(tmp_path, small_frames):
    # With the index first, half a file opens but most frame data is missing.
    frames = np.concatenate([small_frames] * 3)
    full = encode(tmp_path / "full.mp4", frames, "libx264", "yuv420p", options={"movflags": "+faststart"})
    data = full.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    for keep, name in [(0.5, "half.mp4"), (0.12, "stub.mp4")]:
        cut = tmp_path / name
        cut.write_bytes(data[: int(len(data) * keep)])
        assert probe_video(cut).num_frames == 3 * T  # the header is intact ...
        expect_error(VideoError, f"'{name}' .*(truncated|damaged)", load_clip, cut)  # ... the frames are not


def test_audio_only_file(tmp_path):
    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for _ in range(4):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    expect_error(VideoError, "'voice.mp4' has no video stream", load_clip, path)


def test_empty_folder(tmp_path):
    (tmp_path / "frames").mkdir()
    expect_error(VideoError, "folder 'frames' is empty", load_clip, tmp_path / "frames")


def test_folder_without_images(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    (folder / "clip.mp4").write_bytes(b"\0" * 10)
    expect_error(VideoError, "folder 'docs' has no JPEG or PNG frames", probe_video, folder)


def test_folder_with_mixed_sizes_names_the_first_offender(tmp_path, blackswan):
    folder = tmp_path / "mixed"
    folder.mkdir()
    src = blackswan
    for i in range(5):
        img = Image.open(src / f"{i:05d}.jpg")
        if i >= 3:
            img = img.resize((427, 240))
        img.save(folder / f"{i:05d}.jpg")
    msg = expect_error(VideoError, "frames differ in size", load_clip, folder)
    assert "'00003.jpg' is 427×240" in msg and "854×480" in msg and "00004" not in msg


def test_damaged_image_in_folder(tmp_path, small_frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(small_frames[0]).save(folder / "00000.jpg")
    (folder / "00001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    expect_error(VideoError, "'00001.jpg'", load_clip, folder)


# --------------------------------------------------------------------------- limits (refused from headers)


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (LimitsConfig(max_frames=5), "has 8 frames; the limit is 5"),
        (LimitsConfig(max_seconds=0.5), "0.7 s long; the limit is 0.5 s"),
        (LimitsConfig(max_pixels=1000), "96×54 .*the limit is 1,000 pixels"),
        (LimitsConfig(max_upload_mb=0.001), "the upload limit is 0.001 MB"),
    ],
)
def test_video_limits_refused_before_decoding(tmp_path, small_frames, monkeypatch, limits, match):
    for name, codec, pix in [("c.mp4", "libx264", "yuv420p"), ("c.webm", "libvpx-vp9", "yuv420p")]:
        path = encode(tmp_path / name, small_frames, codec, pix)
        forbid_decoding(monkeypatch)
        expect_error(VideoError, match, probe_video, path, limits)
        expect_error(VideoError, match, load_clip, path, limits)
        monkeypatch.undo()


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (LimitsConfig(max_frames=10), "has 16 frames; the limit is 10"),
        (LimitsConfig(max_seconds=0.5), "0.7 s long"),
        (LimitsConfig(max_pixels=640 * 480), "854×480"),
        (LimitsConfig(max_upload_mb=0.5), "upload limit"),
    ],
)
def test_folder_limits_refused_before_decoding(blackswan, monkeypatch, limits, match):
    forbid_decoding(monkeypatch)
    msg = expect_error(VideoError, match, load_clip, blackswan, limits)
    assert "folder 'blackswan'" in msg


def test_decoded_memory_budget(tmp_path, small_frames, monkeypatch):
    path = encode(tmp_path / "c.mp4", small_frames, "libx264", "yuv420p")
    lim = LimitsConfig(max_decoded_mb=0.05)  # 8 × 96 × 54 × 3 B ≈ 0.12 MB
    expect_error(VideoError, "would need 0.1 MB of memory", load_clip, path, lim)
    assert load_clip(path, lim, max_side=32).frames.shape == (T, 18, 32, 3)  # smaller frames fit


# --------------------------------------------------------------------------- GIF bombs


def tiny_gif(width: int, height: int, frames: int, delay_cs: int = 10) -> bytes:
    """A hand-made GIF: a logical screen of any size, `frames` images of 1×1 pixel (a few bytes
    each). Decoding it would allocate width × height × 3 bytes per frame."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0))
    out += bytes([0, 0, 0, 255, 255, 255])  # 2-colour global table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for i in range(frames):
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", i % width, 0, 1, 1, 0)
        out += b"\x02\x02\x44\x01\x00"  # LZW: clear, pixel 0, end
    out += b"\x3b"
    return bytes(out)


def test_hand_made_gif_is_read_like_pillow_reads_it(tmp_path):
    path = tmp_path / "dots.gif"
    path.write_bytes(tiny_gif(6, 4, 3, delay_cs=5))
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (3, 6, 4)
    assert info.fps == pytest.approx(20.0)
    with Image.open(path) as img:
        assert img.n_frames == 3
    assert load_clip(path).frames.shape == (3, 4, 6, 3)


@pytest.mark.parametrize(
    ("gif", "match"),
    [
        (tiny_gif(20000, 20000, 1), "20000×20000"),  # 400 M pixels from a 60-byte file
        (tiny_gif(64, 64, 5000, delay_cs=2), "5,000 frames; the limit for GIFs is 2,000"),
        (tiny_gif(64, 64, 50, delay_cs=65535), "s long; the limit is 600 s"),
        (tiny_gif(2000, 2000, 1500), "would need .* of memory"),  # 18 GB decoded, 30 kB on disk
        # the probe set's 24 kB GIF: 1,070 frames of 2000² plan 12 GiB, under the old fixed budget
        (tiny_gif(2000, 2000, 1070), "would need .* of memory.*STEERSEG_MAX_DECODED_MB"),
    ],
)
def test_gif_bombs_refused_before_decoding(tmp_path, monkeypatch, gif, match):
    path = tmp_path / "bomb.gif"
    path.write_bytes(gif)
    forbid_decoding(monkeypatch)
    start = time.perf_counter()
    expect_error(VideoError, match, load_clip, path)
    assert time.perf_counter() - start < 2.0


def test_decode_budget_comes_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "g.gif"
    path.write_bytes(tiny_gif(200, 200, 30))  # 30 × 200 × 200 × 3 B = 3.4 MB decoded
    forbid_decoding(monkeypatch)
    lim = LimitsConfig.from_env({"STEERSEG_MAX_DECODED_MB": "2"})
    assert lim.max_decoded_mb == 2.0
    expect_error(VideoError, "limit is 2 MB", load_clip, path, lim)


def test_gif_over_byte_limit(tmp_path):
    path = tmp_path / "big.gif"
    path.write_bytes(tiny_gif(8, 8, 200))
    expect_error(VideoError, "limit for GIFs", probe_video, path, LimitsConfig(max_gif_bytes=1000))


def test_truncated_gif_never_raises_raw(tmp_path, small_frames):
    path = tmp_path / "cut.gif"
    imgs = [Image.fromarray(f) for f in small_frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    try:
        clip = load_clip(path)
    except VideoError as err:
        assert "cut.gif" in str(err)
    else:
        assert 1 <= clip.num_frames <= T
    path.write_bytes(data[:10])
    expect_error(VideoError, "'cut.gif' is not a valid GIF", load_clip, path)


# --------------------------------------------------------------------------- sample_indices


def test_effective_fps_keeps_the_playback_duration():
    """8 of 300 frames at 30 fps span the same 10 s: 0.8 fps (grounding, previews and training)."""
    assert effective_fps(30.0, 300, 8) == pytest.approx(0.8)
    assert effective_fps(24.0, 24, 24) == pytest.approx(24.0)
    assert effective_fps(0.0, 10, 5) > 0  # no division by zero on a broken rate


def test_sample_indices_examples():
    idx = sample_indices(50, 16)
    assert idx.dtype == np.int64 and len(idx) == 16 and idx[0] == 0 and idx[-1] == 49
    assert np.all(np.diff(idx) > 0)
    assert sample_indices(9, 5).tolist() == [0, 2, 4, 6, 8]
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # fewer frames than k: repeats
    assert sample_indices(1, 4).tolist() == [0, 0, 0, 0]
    assert sample_indices(10, 1).tolist() == [0]
    for bad in [(0, 4), (5, 0), (-1, 3), (4, -2)]:
        with pytest.raises(ValueError):
            sample_indices(*bad)
    with pytest.raises(TypeError):
        sample_indices(10.5, 3)  # type: ignore[arg-type]


@given(st.integers(1, 100_000), st.integers(1, 300))
def test_sample_indices_properties(n, k):
    idx = sample_indices(n, k)
    assert idx.dtype == np.int64 and idx.shape == (k,)
    assert idx.min() >= 0 and idx.max() <= n - 1 and idx[0] == 0
    if k >= 2:
        assert idx[-1] == n - 1
        ideal = np.arange(k) * (n - 1) / (k - 1)
        assert np.all(np.abs(idx - ideal) <= 0.5 + 1e-9)
    assert np.all(np.diff(idx) >= 0)
    if k <= n:
        assert len(set(idx.tolist())) == k  # no repeats when there are enough frames


# --------------------------------------------------------------------------- validate_expression


def test_validate_expression_cleans_whitespace_and_controls():
    assert validate_expression("  the   black\tswan \n swimming\r\n") == "the black swan swimming"
    assert validate_expression("the\x00 swan\x07 on\x1b the lake") == "the swan on the lake"
    assert validate_expression("a\u00a0duck\u3000here") == "a duck here"


@pytest.mark.parametrize(
    "text",
    [
        "البجعة السوداء على اليمين",  # Arabic, right-to-left
        "\u200fהברבור השחור\u200f",  # Hebrew with right-to-left marks
        "the 👨‍👩‍👧 family on the left",  # emoji with zero-width joiners
        "🦢",
        "café naïve Ångström",  # precomposed
        "cafe\u0301",  # combining accent
        "黑色的天鹅",
    ],
)
def test_validate_expression_keeps_unicode(text):
    assert validate_expression(text) == text


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "empty"), ("   \n\t ", "empty"), ("\x00\x01\x02", "empty"), ("?!...", "no words"), ("-- $$ ++ !!", "no words")],
)
def test_validate_expression_refusals(text, match):
    expect_error(InputError, match, validate_expression, text)


def test_validate_expression_length_limit_and_type():
    limits = LimitsConfig(max_expression_chars=10)
    assert validate_expression("  abcdefghij  ", limits) == "abcdefghij"
    expect_error(InputError, r"too long \(11 characters\); the limit is 10", validate_expression, "abcdefghijk", limits)
    expect_error(InputError, "too long", validate_expression, "x" * 1001)
    expect_error(InputError, "must be text", validate_expression, None)  # type: ignore[arg-type]
    expect_error(InputError, "must be text", validate_expression, b"swan")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_validate_expression_properties(text):
    limits = LimitsConfig(max_expression_chars=60)
    try:
        out = validate_expression(text, limits)
    except InputError:
        # Refused only when empty, wordless or too long once cleaned.
        cleaned = " ".join("".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cs")).split())
        has_word = any(unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "So" for c in cleaned)
        assert not cleaned or not has_word or len(cleaned) > 60
        return
    assert out and out == out.strip() and "  " not in out and len(out) <= 60
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in out)
    assert validate_expression(out, limits) == out  # idempotent
    # Nothing but control characters and whitespace was removed; the rest kept its order.
    kept = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs") and not c.isspace())
    assert out.replace(" ", "") == kept


@given(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=50))
def test_validate_expression_accepts_any_words(text):
    assert validate_expression(text) == text


def test_decoder_rechecks_limits_when_headers_lie(tmp_path, small_frames):
    path = encode(tmp_path / "c.mp4", small_frames, "libx264", "yuv420p")
    lying = VideoInfo(str(path), "file", 2, float(FPS), W, H, 0.1)  # what a forged header could say
    expect_error(VideoError, "more than 5 frames", video_mod._decode_video, path, lying,
                 LimitsConfig(max_frames=5), None, 0)
    longer = encode(tmp_path / "two_seconds.mp4", np.concatenate([small_frames] * 3), "libx264", "yuv420p")
    expect_error(VideoError, "runs past 0.5 s", video_mod._decode_video, longer, lying,
                 LimitsConfig(max_seconds=0.5), None, 0)
    expect_error(VideoError, "96×54 frame", video_mod._decode_video, path, lying,
                 LimitsConfig(max_pixels=5000), None, 0)
