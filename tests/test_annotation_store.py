"""The annotation database: schema and migrations, answers and their history, the per-annotator
place, concurrent writers, and a writer killed mid-stream."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from steerseg_core.annotation import store
from steerseg_core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _study(db: Path, n: int = 5, ready: bool = True, name: str = "s") -> int:
    samples = [{"video_id": f"v{i}", "exp_id": "0", "obj_id": "1", "clip_ref": f"/clips/v{i}",
                "expression": f"expression {i}", "reasoning": "r" if ready else None,
                "attributes": ("red", "left") if ready else None} for i in range(n)]
    return store.insert_study(db, {"name": name, "seed": 0, "n_requested": n, "pool_size": n}, samples)


def test_new_database_has_schema_wal_and_version(tmp_path):
    db = tmp_path / "sub" / "a.db"
    assert store.ensure_schema(db) == store.SCHEMA_VERSION == 2
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"studies", "samples", "judgements", "judgement_history", "annotator_state", "seg_scores"} <= tables


def test_env_var_sets_database_path(tmp_path):
    from steerseg_core.config import paths_from_env

    assert paths_from_env({"STEERSEG_DB": str(tmp_path / "x.db")}).db == tmp_path / "x.db"
    assert paths_from_env({}).db.parts[-2:] == ("annotations", "steerseg.db")


def test_migration_from_version_1_keeps_data(tmp_path):
    db = tmp_path / "old.db"
    raw = store._open(db, schema=False)
    store.migrate(raw, target=1)  # a database written by the first release
    raw.conn.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "seg_scores" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    # Version-1 code wrote a study and an answer; opening with today's code migrates in place.
    raw = store._open(db, schema=False)
    raw["studies"].insert({"name": "old", "created_at": "t", "seed": 3, "segmentation_question": 0})
    raw["samples"].insert({"study_id": 1, "position": 0, "clip_ref": "/c", "expression": "e",
                           "attributes": '["a"]', "video_id": "v", "exp_id": "0"})
    raw.conn.commit()
    raw.conn.close()
    study = store.get_study(db, 1)
    assert (study.name, study.seed, study.n_samples) == ("old", 3, 1)
    assert store.ensure_schema(db) == 2
    store.record_judgement(db, 1, 0, "ann", "True")
    assert store.get_seg_scores(db, 1) == {}


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "new.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(store.StoreError, match="newer"):
        store.list_studies(db)


def test_not_a_database_is_refused(tmp_path):
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(store.StoreError, match="cannot open"):
        store.list_studies(db)


def test_answer_revise_history_and_idempotence(tmp_path):
    db = tmp_path / "a.db"
    sid = _study(db)
    j1 = store.record_judgement(db, sid, 2, "  Ann  Lee ", "true", note="clear")
    assert (j1.annotator, j1.label, j1.revision, j1.note) == ("Ann Lee", "True", 1, "clear")
    same = store.record_judgement(db, sid, 2, "Ann Lee", True, note="clear")  # a retried request
    assert same.revision == 1 and same.updated_at == j1.updated_at
    j2 = store.record_judgement(db, sid, 2, "Ann Lee", "f")
    assert (j2.id, j2.label, j2.revision, j2.note, j2.created_at) == (j1.id, "False", 2, "", j1.created_at)
    assert j2.updated_at > j1.updated_at
    assert len(store.get_judgements(db, sid)) == 1
    hist = store.get_history(db, sid)
    assert [(h["label"], h["revision"], h["note"]) for h in hist] == [("True", 1, "clear"), ("False", 2, "")]
    # The second question is a separate answer of the same annotator.
    store.record_judgement(db, sid, 2, "Ann Lee", "Skip", question="segmentation")
    assert {(j.question, j.label) for j in store.get_judgements(db, sid)} == {
        ("reasoning", "False"), ("segmentation", "Skip")}


@pytest.mark.parametrize("kwargs,match", [
    ({"annotator": " "}, "annotator name"),
    ({"annotator": "x" * 65}, "longer than 64"),
    ({"label": "maybe"}, "True, False or Skip"),
    ({"question": "colour"}, "question must be"),
    ({"position": 5}, "no item 6"),
])
def test_bad_answers_are_refused(tmp_path, kwargs, match):
    db = tmp_path / "a.db"
    sid = _study(db)
    args = {"study_id": sid, "position": 0, "annotator": "ann", "label": "True", "question": "reasoning"}
    args.update(kwargs)
    with pytest.raises((InputError, store.StoreError), match=match):
        store.record_judgement(db, **args)
    assert store.get_judgements(db, sid) == []


def test_item_without_attributes_cannot_be_judged(tmp_path):
    db = tmp_path / "a.db"
    sid = _study(db, ready=False)
    with pytest.raises(InputError, match="no attributes yet"):
        store.record_judgement(db, sid, 0, "ann", "True")


def test_duplicate_study_name_is_refused_and_writes_nothing(tmp_path):
    db = tmp_path / "a.db"
    _study(db, n=3)
    with pytest.raises(InputError, match="already exists"):
        _study(db, n=4)
    assert [s.n_samples for s in store.list_studies(db)] == [3]
    assert store.find_study(db, "s").id == store.find_study(db, "#1").id == 1
    with pytest.raises(store.StoreError):
        store.find_study(db, "nope")


def test_cursor_per_annotator_and_study(tmp_path):
    db = tmp_path / "a.db"
    sid = _study(db)
    assert store.get_cursor(db, sid, "ann") is None
    store.set_cursor(db, sid, "ann", 3)
    store.set_cursor(db, sid, "bob", 1)
    store.set_cursor(db, sid, "ann", 4)
    assert (store.get_cursor(db, sid, "ann"), store.get_cursor(db, sid, "bob")) == (4, 1)


def test_eight_concurrent_annotators_lose_and_duplicate_nothing(tmp_path):
    """8 threads × 40 answers (30 items answered, then a third of them revised) on one database."""
    db = tmp_path / "a.db"
    sid = _study(db, n=30)
    names = [f"annotator-{k}" for k in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def work(k: int, name: str) -> None:
        try:
            start.wait()
            for pos in range(30):
                store.record_judgement(db, sid, pos, name, ("True", "False", "Skip")[(pos + k) % 3])
                if pos % 10 == 9:
                    store.set_cursor(db, sid, name, pos)
            for pos in range(0, 30, 3):  # revise every third answer
                store.record_judgement(db, sid, pos, name, "False" if (pos + k) % 3 == 0 else "True",
                                       note=f"revised by {name}")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k, n)) for k, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    judgements = store.get_judgements(db, sid)
    assert len(judgements) == 8 * 30
    assert len({(j.sample_id, j.annotator, j.question) for j in judgements}) == 8 * 30
    hist = store.get_history(db, sid)
    assert len(hist) == 8 * (30 + 10)
    for j in judgements:
        k, pos = names.index(j.annotator), j.sample_id - 1
        if pos % 3 == 0:
            want = "False" if (pos + k) % 3 == 0 else "True"
            assert (j.label, j.revision, j.note) == (want, 2, f"revised by {j.annotator}")
        else:
            assert (j.label, j.revision) == (("True", "False", "Skip")[(pos + k) % 3], 1)
    assert all(store.get_cursor(db, sid, n) == 29 for n in names)


def test_writer_killed_mid_stream_leaves_a_consistent_database(tmp_path):
    db = tmp_path / "a.db"
    sid = _study(db, n=150)
    script = textwrap.dedent(f"""
        import itertools, sys
        sys.path.insert(0, {str(ROOT)!r})
        from steerseg_core.annotation import store
        print("ready", flush=True)
        for i in itertools.count():  # writes until killed: the kill always lands mid-stream
            if i == 20:
                print("written", flush=True)
            pos = i % 150
            store.record_judgement({str(db)!r}, {sid}, pos, "killed", "True")
            store.record_judgement({str(db)!r}, {sid}, pos, "killed", "False", note="changed")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert proc.stdout.readline().strip() == "written"  # 40 history rows committed, still writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    judgements = {j.sample_id: j for j in store.get_judgements(db, sid)}
    hist = store.get_history(db, sid)
    assert len(hist) >= 40
    # Every answer's current state is exactly the last entry of its history (no torn writes).
    last = {}
    for h in hist:
        last[h["judgement_id"]] = h
    assert set(last) == {j.id for j in judgements.values()}
    for j in judgements.values():
        h = last[j.id]
        assert (h["label"], h["revision"], h["note"]) == (j.label, j.revision, j.note)
    # Resuming: the same loop run again completes without duplicates.
    for pos in range(150):
        store.record_judgement(db, sid, pos, "killed", "False", note="changed")
    final = store.get_judgements(db, sid)
    assert len(final) == 150 and all(j.label == "False" for j in final)
