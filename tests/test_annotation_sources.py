"""Creating studies from every supported input, seeded sampling, and refusing broken inputs
(bad JSON, missing frames, unknown videos) without writing anything."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from steerseg_core.annotation import create_study, sample_items, store
from steerseg_core.annotation.sources import SourceItem, read_source
from steerseg_core.errors import InputError

from .conftest import REFYTVOS, davis_frames
from .test_annotation_helpers import EXPRESSIONS, SEQS, link_frames, make_reasonvos


@pytest.fixture
def reasonvos(tmp_path, data_dir):
    return make_reasonvos(tmp_path / "ReasonVOS")


def _nothing_written(db):
    if not db.exists():
        return True
    conn = sqlite3.connect(db)
    return conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0] == 0 and \
        conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0


def test_reasonvos_layout_creates_a_seeded_study(tmp_path, reasonvos):
    db = tmp_path / "a.db"
    study = create_study(db, reasonvos, name="reasonvos-4", n=4, seed=7)
    assert (study.source_kind, study.pool_size, study.n_samples, study.seed) == ("reasonvos", 6, 4, 7)
    samples = store.get_samples(db, study.id)
    assert [s.position for s in samples] == [0, 1, 2, 3]
    for s in samples:
        assert s.video_id in SEQS and s.expression == EXPRESSIONS[s.video_id][int(s.exp_id)]
        assert s.clip_ref == str((reasonvos.parent / "JPEGImages" / s.video_id).resolve())
        assert s.obj_id == "1" and s.extra == {"is_sent": s.expression.endswith("?")} and s.attributes is None
    # Same seed → same items in the same order; the file order does not matter.
    meta = json.loads(reasonvos.read_text())
    meta["videos"] = dict(reversed(list(meta["videos"].items())))
    shuffled = reasonvos.with_name("shuffled.json")
    shuffled.write_text(json.dumps(meta))
    again = create_study(db, shuffled, name="again", n=4, seed=7, frames_root=reasonvos.parent)
    assert [s.key for s in store.get_samples(db, again.id)] == [s.key for s in samples]
    other = create_study(db, reasonvos, name="other seed", n=4, seed=8)
    assert [s.key for s in store.get_samples(db, other.id)] != [s.key for s in samples]


def test_default_size_and_random_seed_are_recorded(tmp_path, reasonvos):
    db = tmp_path / "a.db"
    study = create_study(db, reasonvos, name="all")
    assert study.n_requested == 132 and study.n_samples == 6  # the pool is smaller than 132
    assert isinstance(study.seed, int) and 0 <= study.seed < 2**31
    items = read_source(reasonvos).items
    assert [s.key for s in store.get_samples(db, study.id)] == [
        (i.video_id, i.exp_id) for i in sample_items(items, 132, study.seed)]


def test_sample_items_is_without_replacement_and_checks_n():
    pool = [SourceItem(f"v{i}", "0", "", "/c", f"e{i}") for i in range(200)]
    picked = sample_items(pool, 132, seed=0)
    assert len(picked) == 132 and len({p.video_id for p in picked}) == 132
    assert picked == sample_items(list(reversed(pool)), 132, seed=0)
    with pytest.raises(InputError, match="at least 1"):
        sample_items(pool, 0, seed=0)


def test_ytvos_style_dict_layout_and_object_level_layout(tmp_path, data_dir):
    root = tmp_path / "ytvos"
    link_frames(root / "valid", SEQS[:2])
    videos = {seq: {"expressions": {"0": {"exp": f"the main object of {seq}"}, "1": {"exp": "the water"}},
                    "frames": sorted(p.stem for p in davis_frames(seq).glob("*.jpg"))} for seq in SEQS[:2]}
    meta = root / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": videos}))
    db = tmp_path / "a.db"
    study = create_study(db, meta, name="yt", n=10, seed=0, frames_root=root / "valid")
    assert study.source_kind == "benchmark" and study.n_samples == 4
    objects = {"videos": {seq: {"objects": {"1": {"category": "animal", "expressions": ["a", "b"]},
                                            "2": {"category": "person", "expressions": ["c"]}}}
                          for seq in SEQS[:1]}}
    obj_meta = root / "meta_expressions_valid.json"
    obj_meta.write_text(json.dumps(objects))
    src = read_source(obj_meta, root / "valid")
    assert src.kind == "objects"
    assert [(i.exp_id, i.obj_id, i.expression, i.extra) for i in src.items] == [
        ("0", "1", "a", {"category": "animal"}), ("1", "1", "b", {"category": "animal"}),
        ("2", "2", "c", {"category": "person"})]


def test_real_refytvos_expressions_without_frames_are_refused(tmp_path, data_dir):
    """The real Ref-YouTube-VOS valid file, but its frames are not here: refused, naming videos."""
    meta = REFYTVOS / "valid" / "meta_expressions.json"
    db = tmp_path / "a.db"
    (tmp_path / "frames").mkdir()
    with pytest.raises(InputError, match=r"refused, nothing was written: unknown video \w+.*and 50[0-9] more"):
        create_study(db, meta, name="yt", frames_root=tmp_path / "frames")
    assert _nothing_written(db)


def test_csv_and_json_lists(tmp_path, data_dir):
    (tmp_path / "clips").mkdir()
    link_frames(tmp_path / "clips", SEQS[:2], sub="frames")
    gif = tmp_path / "clips" / "tiny.gif"
    from PIL import Image

    Image.new("RGB", (32, 24), "red").save(gif, save_all=True, append_images=[Image.new("RGB", (32, 24), "blue")])
    csv_path = tmp_path / "clips" / "study.csv"
    csv_path.write_text("video,expression,obj_id,attributes,reasoning\n"
                        "frames/blackswan,the swan,1,,\n"
                        "frames/camel,the camel,1,\"animal, brown, humped\",a camel is walking\n"
                        "tiny.gif,the red square,,,\n")
    db = tmp_path / "a.db"
    study = create_study(db, csv_path, name="csv", n=3, seed=0)
    assert study.source_kind == "list-csv"
    by_video = {s.video_id: s for s in store.get_samples(db, study.id)}
    assert set(by_video) == {"frames/blackswan", "frames/camel", "tiny.gif"}
    camel = by_video["frames/camel"]
    assert camel.attributes == ("animal", "brown", "humped") and camel.reasoning == "a camel is walking"
    assert camel.attributes_source == "imported:study.csv" and by_video["tiny.gif"].attributes is None
    assert by_video["tiny.gif"].clip_ref == str(gif.resolve())

    json_path = tmp_path / "clips" / "study.json"
    json_path.write_text(json.dumps({"items": [{"video": str(davis_frames("libby")), "expression": "the dog",
                                                "id": "dog-1"}]}))
    study2 = create_study(db, json_path, name="json", n=5, seed=0)
    (s,) = store.get_samples(db, study2.id)
    assert (study2.source_kind, s.exp_id, s.clip_ref) == ("list-json", "dog-1", str(davis_frames("libby").resolve()))


@pytest.mark.parametrize("case,match", [
    ("bad_json", r"not valid JSON \(line 1"),
    ("not_videos", "expected a list of items"),
    ("missing_frames", r"video libby: 1 listed frame\(s\) missing .*first: 99999"),
    ("unknown_video", r"unknown video zebra: no frames folder"),
    ("empty_text", "expression 1 has no text"),
    ("traversal", r"unknown video \.\./outside"),
    ("list_unknown_video", r"item 2: unknown video nowhere/clip.mp4"),
    ("list_not_video", r"item 1: notes.txt is not a video file"),
    ("list_missing_fields", "item 1 needs 'video' and 'expression'"),
    ("list_duplicate", "duplicate id 7 for video"),
    ("empty_folder", r"no image files in"),
])
def test_broken_inputs_are_refused_and_write_nothing(tmp_path, reasonvos, case, match):
    meta = json.loads(reasonvos.read_text())
    path = tmp_path / "broken.json"
    base = reasonvos.parent
    if case == "bad_json":
        path.write_text('{"videos": {"libby": ')
    elif case == "not_videos":
        path.write_text(json.dumps({"clips": []}))
    elif case == "missing_frames":
        meta["videos"]["libby"]["frames"].append("99999")
    elif case == "unknown_video":
        meta["videos"]["zebra"] = meta["videos"]["libby"]
    elif case == "empty_text":
        meta["videos"]["libby"]["expressions"][1]["exp_text"] = "  "
    elif case == "traversal":
        meta["videos"]["../outside"] = meta["videos"]["libby"]
    elif case == "empty_folder":
        (base / "JPEGImages" / "empty").mkdir()
        meta["videos"]["empty"] = {"expressions": [{"exp_text": "x"}]}
    elif case.startswith("list_"):
        (tmp_path / "notes.txt").write_text("x")
        rows = {"list_unknown_video": [{"video": str(davis_frames("libby")), "expression": "a"},
                                       {"video": "nowhere/clip.mp4", "expression": "b"}],
                "list_not_video": [{"video": "notes.txt", "expression": "a"}],
                "list_missing_fields": [{"video": str(davis_frames("libby"))}],
                "list_duplicate": [{"video": str(davis_frames("libby")), "expression": "a", "id": 7},
                                   {"video": str(davis_frames("libby")), "expression": "b", "id": 7}]}[case]
        path.write_text(json.dumps(rows))
    if not path.exists():
        path.write_text(json.dumps(meta))
    db = tmp_path / "a.db"
    with pytest.raises(InputError, match=match):
        create_study(db, path, name="broken", n=3, seed=0, frames_root=base)
    assert _nothing_written(db)


def test_attributes_file_at_creation_is_validated_first(tmp_path, reasonvos):
    db = tmp_path / "a.db"
    bad = tmp_path / "attrs.json"
    bad.write_text(json.dumps([{"video": "libby", "exp_id": 0, "attributes": 5}]))
    with pytest.raises(InputError, match="item 1: attributes must be a list"):
        create_study(db, reasonvos, name="x", n=6, seed=0, attributes=bad)
    unrelated = tmp_path / "unrelated.json"
    unrelated.write_text(json.dumps([{"video": "zebra", "exp_id": 0, "attributes": ["a"]}]))
    with pytest.raises(InputError, match="none of its items is among the 6 sampled"):
        create_study(db, reasonvos, name="x", n=6, seed=0, attributes=unrelated)
    assert _nothing_written(db)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"backbone": "other/model", "items": [
        {"video": "libby", "exp_id": 1, "reasoning": "a dog fetches", "attributes": "brown, small, running"}]}))
    study = create_study(db, reasonvos, name="x", n=6, seed=0, attributes=good)
    ready = [s for s in store.get_samples(db, study.id) if s.ready]
    assert [(s.key, s.attributes, s.backbone) for s in ready] == [
        (("libby", "1"), ("brown", "small", "running"), "other/model")]


def test_benchmark_reader_route(tmp_path, data_dir):
    """A Ref-YouTube-VOS folder in its official layout, read by the evaluation's reader."""
    root = tmp_path / "ref-youtube-vos"
    link_frames(root / "valid", SEQS[:2])
    videos = {seq: {"expressions": {"0": {"exp": f"the main object in {seq}"}},
                    "frames": sorted(p.stem for p in davis_frames(seq).glob("*.jpg"))} for seq in SEQS[:2]}
    (root / "meta_expressions" / "valid").mkdir(parents=True)
    (root / "meta_expressions" / "valid" / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    (root / "meta_expressions" / "test").mkdir(parents=True)  # no test-phase videos among these two
    (root / "meta_expressions" / "test" / "meta_expressions.json").write_text(json.dumps({"videos": {}}))
    db = tmp_path / "a.db"
    study = create_study(db, root, name="yt", n=2, seed=0, benchmark="refytvos")
    assert study.source_kind == "benchmark:refytvos" and study.n_samples == 2
    assert {s.clip_ref for s in store.get_samples(db, study.id)} == {
        str((root / "valid" / "JPEGImages" / s).resolve()) for s in SEQS[:2]}
    shutil.rmtree(root / "valid" / "JPEGImages")
    (root / "valid" / "JPEGImages").mkdir()
    with pytest.raises(InputError):
        create_study(db, root, name="yt2", n=2, seed=0, benchmark="refytvos")
    assert [s.name for s in store.list_studies(db)] == ["yt"]


def test_reasonvos_official_file_with_repeated_ids_and_its_benchmark_route(tmp_path, data_dir):
    """The official ReasonVOS shape: two expressions on one object, and an exp_id that repeats on
    another object of the same video. Each expression keeps its own is_sent; no two share a key,
    read directly or through the benchmark reader (whose keys are the official prediction folders)."""
    root = tmp_path / "ReasonVOS"
    link_frames(root, SEQS[:1])
    frames = sorted(p.stem for p in davis_frames(SEQS[0]).glob("*.jpg"))
    exps = [{"obj_id": 1, "exp_id": 0, "exp_text": "which bird is swimming?", "is_sent": True},
            {"obj_id": 1, "exp_id": 1, "exp_text": "black swan", "is_sent": False},
            {"obj_id": 2, "exp_id": 0, "exp_text": "the reeds behind it", "is_sent": False}]
    meta = root / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": {SEQS[0]: {"source": "MOSE", "frames": frames, "expressions": exps}}}))
    src = read_source(meta)
    assert src.kind == "reasonvos"
    assert [(i.exp_id, i.obj_id, i.extra) for i in src.items] == [
        ("1-0", "1", {"is_sent": True}), ("1-1", "1", {"is_sent": False}), ("2-0", "2", {"is_sent": False})]
    db = tmp_path / "a.db"
    study = create_study(db, root, name="rv", n=3, seed=0, benchmark="reasonvos")
    assert study.source_kind == "benchmark:reasonvos"
    assert sorted(s.exp_id for s in store.get_samples(db, study.id)) == ["1-0", "1-1", "2-0"]
    assert sorted(s.extra["group"] for s in store.get_samples(db, study.id)) == ["phrase", "phrase", "sentence"]
