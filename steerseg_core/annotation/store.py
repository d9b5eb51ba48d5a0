"""The one module that owns the annotation database (SQLite through sqlite-utils).

Gradio runs event handlers in a thread pool and several annotators (and a CLI batch) may write at
once, so every public function opens its own connection, does one transaction and closes it.
Writes start with ``BEGIN IMMEDIATE`` (no lock upgrades, so no spurious "database is locked"),
the journal is WAL (readers never block the writer), and a ``PRAGMA user_version`` schema version
with ordered migrations lets old databases open in newer code. A killed process leaves either a
whole transaction or none of it.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlite_utils import Database

from ..errors import InputError, SteerSegError
from .records import (
    Judgement,
    Sample,
    Study,
    normalise_annotator,
    normalise_label,
    normalise_note,
    normalise_question,
)

BUSY_TIMEOUT_S = 60.0


class StoreError(SteerSegError):
    """The annotation database cannot be used (newer schema, unknown study or item)."""


class StorageError(StoreError):
    """The database cannot be written now (full disk, read-only, busy); what it holds is intact."""


class ReadOnlyStoreError(StorageError):
    """The database file or its folder cannot be written (reading may still work)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ---------------------------------------------------------------- schema and migrations

def _v1(db: Database) -> None:
    db["studies"].create(
        {"id": int, "name": str, "created_at": str, "source_kind": str, "source_path": str,
         "seed": int, "n_requested": int, "pool_size": int, "segmentation_question": int,
         "description": str, "params": str},
        pk="id", not_null={"name", "created_at", "seed"},
    )
    db["studies"].create_index(["name"], unique=True)
    db["samples"].create(
        {"id": int, "study_id": int, "position": int, "video_id": str, "exp_id": str, "obj_id": str,
         "clip_ref": str, "expression": str, "reasoning": str, "attributes": str, "cot_raw": str,
         "cot_issues": str, "backbone": str, "prompt_version": str, "attributes_source": str,
         "generated_at": str, "gen_error": str, "overlay_ref": str, "extra": str},
        pk="id", not_null={"study_id", "position", "clip_ref", "expression"},
        foreign_keys=[("study_id", "studies", "id")],
    )
    db["samples"].create_index(["study_id", "position"], unique=True)
    db["samples"].create_index(["study_id", "video_id", "exp_id"], unique=True)
    db["judgements"].create(
        {"id": int, "sample_id": int, "study_id": int, "annotator": str, "question": str,
         "label": str, "note": str, "created_at": str, "updated_at": str, "revision": int},
        pk="id", not_null={"sample_id", "study_id", "annotator", "question", "label"},
        foreign_keys=[("sample_id", "samples", "id"), ("study_id", "studies", "id")],
    )
    db["judgements"].create_index(["sample_id", "annotator", "question"], unique=True)
    db["judgements"].create_index(["study_id", "annotator"])
    db["judgement_history"].create(
        {"id": int, "judgement_id": int, "sample_id": int, "study_id": int, "annotator": str,
         "question": str, "label": str, "note": str, "revision": int, "recorded_at": str},
        pk="id", foreign_keys=[("judgement_id", "judgements", "id")],
    )
    db["judgement_history"].create_index(["judgement_id"])
    db["annotator_state"].create(
        {"study_id": int, "annotator": str, "position": int, "updated_at": str},
        pk=("study_id", "annotator"), foreign_keys=[("study_id", "studies", "id")],
    )


def _v2(db: Database) -> None:
    # Segmentation quality per sample from an evaluation run (J&F), for the cross-table.
    db["seg_scores"].create(
        {"sample_id": int, "study_id": int, "jf": float, "j": float, "f": float, "source": str,
         "imported_at": str},
        pk="sample_id", foreign_keys=[("sample_id", "samples", "id"), ("study_id", "studies", "id")],
    )
    db["seg_scores"].create_index(["study_id"])


MIGRATIONS: tuple[Callable[[Database], None], ...] = (_v1, _v2)
SCHEMA_VERSION = len(MIGRATIONS)


def _set_wal(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"could not switch the annotation database to WAL mode (got {mode})")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def migrate(db: Database, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema up to ``target`` inside one immediate transaction; returns the version."""
    conn = db.conn
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the annotation database has schema version {version}, newer than this SteerSeg "
            f"understands ({SCHEMA_VERSION}); upgrade SteerSeg or point STEERSEG_DB elsewhere"
        )
    if version >= target:
        return version
    _set_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
        for step in range(version, target):
            MIGRATIONS[step](db)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return max(version, target)


_anchors: dict[str, sqlite3.Connection] = {}
_anchors_lock = threading.Lock()
MAX_ANCHORS = 16


def _anchor(path: Path) -> None:
    """Keep one idle connection per database open for the life of the process.

    SQLite checkpoints and deletes the WAL whenever the *last* connection closes (two fsyncs);
    with a connection per operation that would be every write. An idle anchor avoids it; WAL's
    automatic checkpoints still run.
    """
    key = str(path.resolve())
    with _anchors_lock:
        if key in _anchors:
            return
        if len(_anchors) >= MAX_ANCHORS:
            _anchors.pop(next(iter(_anchors))).close()
        conn = sqlite3.connect(key, check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # attaches it to the WAL
        _anchors[key] = conn


def storage_problem(err: BaseException, path: Path | str) -> StorageError | None:
    """A clear ``StoreError`` for a database that cannot be written (read-only file or folder, full
    disk, lock held too long), or None for other errors. The message names the file only."""
    name = Path(path).name
    text = str(err).lower()
    code = getattr(err, "errno", None)
    kept = "Nothing was saved by this action; everything stored before is safe."
    if code == errno.ENOSPC or "disk is full" in text or "no space left" in text:
        return StorageError(f"the server's disk is full, so the annotation database '{name}' cannot grow. "
                          f"{kept} Free some space (or point STEERSEG_DB elsewhere) and try again.")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR) or "readonly" in text \
            or "read-only" in text or "unable to open database" in text or "permission denied" in text:
        return ReadOnlyStoreError(f"the annotation database '{name}' is read-only or its folder cannot be written. "
                          f"{kept} Make it writable (or point STEERSEG_DB elsewhere) and try again.")
    if "database is locked" in text or "database is busy" in text:
        return StorageError(f"the annotation database '{name}' stayed busy for {BUSY_TIMEOUT_S:.0f} s. "
                          f"{kept} Try again in a moment.")
    if code == errno.EIO or "disk i/o error" in text:
        return StorageError(f"the annotation database '{name}' could not be written (disk I/O error). {kept}")
    return None


@contextmanager
def _storage_errors(path: Path | str) -> Iterator[None]:
    """Turn sqlite/OS failures of the storage itself into ``storage_problem`` messages."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as err:
        problem = storage_problem(err, path)
        if problem is None:
            raise
        raise problem from err


def _open(path: Path | str, schema: bool = True) -> Database:
    path = Path(path)
    with _storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        db = Database(conn, execute_plugins=False)
        if schema:
            migrate(db)
            _anchor(path)
        return db
    except sqlite3.DatabaseError as err:
        conn.close()
        raise (storage_problem(err, path) or StoreError(f"cannot open the annotation database {path}: {err}")) \
            from err
    except BaseException:
        conn.close()
        raise


def _open_immutable(path: Path | str, cause: StoreError) -> Database:
    """Read a database on read-only storage (WAL readers need a writable folder, so a normal open
    fails there). Nothing can write it meanwhile, which is what ``immutable`` promises SQLite."""
    path = Path(path)
    if not path.is_file():
        raise cause
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?immutable=1", uri=True, check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        raise cause from None
    return Database(conn, execute_plugins=False)


@contextmanager
def reading(path: Path | str) -> Iterator[Database]:
    """A connection holding one read snapshot (a deferred transaction) for its lifetime. On
    read-only storage the database is still readable (opened immutable)."""
    try:
        db = _open(path)
    except ReadOnlyStoreError as err:
        db = _open_immutable(path, err)
    try:
        with _storage_errors(path):
            db.conn.execute("BEGIN")
        yield db
    finally:
        try:
            db.conn.rollback()
        finally:
            db.conn.close()


@contextmanager
def writing(path: Path | str) -> Iterator[Database]:
    """A connection holding the write lock: everything inside commits together or not at all.

    A full disk or a read-only database fails the whole transaction (nothing of it is stored,
    everything before it stays) with a ``StoreError`` that says so."""
    db = _open(path)
    try:
        with _storage_errors(path):
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.conn.rollback()
                raise
            db.conn.commit()
    finally:
        with suppress(sqlite3.Error):
            db.conn.rollback()  # a failed COMMIT leaves the transaction open: end it before closing
        db.conn.close()


def ensure_schema(path: Path | str) -> int:
    """Create or upgrade the database; returns the schema version."""
    db = _open(path)
    try:
        return int(db.conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.conn.close()


# ---------------------------------------------------------------- row conversion

def _loads(text: str | None, default: Any) -> Any:
    if text is None or text == "":
        return default
    return json.loads(text)


def _study(row: dict[str, Any], n_samples: int) -> Study:
    return Study(
        id=row["id"], name=row["name"], created_at=row["created_at"],
        source_kind=row["source_kind"] or "", source_path=row["source_path"] or "",
        seed=row["seed"], n_requested=row["n_requested"] or 0, pool_size=row["pool_size"] or 0,
        n_samples=n_samples, segmentation_question=bool(row["segmentation_question"]),
        description=row["description"] or "", params=_loads(row["params"], {}),
    )


def _sample(row: dict[str, Any]) -> Sample:
    attrs = _loads(row["attributes"], None)
    return Sample(
        id=row["id"], study_id=row["study_id"], position=row["position"],
        video_id=row["video_id"] or "", exp_id=row["exp_id"] or "", obj_id=row["obj_id"] or "",
        clip_ref=row["clip_ref"], expression=row["expression"], reasoning=row["reasoning"],
        attributes=tuple(attrs) if attrs is not None else None, cot_raw=row["cot_raw"] or "",
        cot_issues=tuple(_loads(row["cot_issues"], [])), backbone=row["backbone"] or "",
        prompt_version=row["prompt_version"] or "", attributes_source=row["attributes_source"] or "",
        generated_at=row["generated_at"] or "", gen_error=row["gen_error"] or "",
        overlay_ref=row["overlay_ref"] or "", extra=_loads(row["extra"], {}),
    )


def _judgement(row: dict[str, Any]) -> Judgement:
    return Judgement(
        id=row["id"], sample_id=row["sample_id"], study_id=row["study_id"], annotator=row["annotator"],
        question=row["question"], label=row["label"], note=row["note"] or "",
        created_at=row["created_at"], updated_at=row["updated_at"], revision=row["revision"],
    )


# ---------------------------------------------------------------- studies and samples

def insert_study(path: Path | str, study: dict[str, Any], samples: Sequence[dict[str, Any]]) -> int:
    """Write a study and all its samples in one transaction; returns the new study id."""
    with writing(path) as db:
        if db.execute("SELECT 1 FROM studies WHERE name = ?", [study["name"]]).fetchone():
            raise InputError(f"a study named {study['name']!r} already exists; choose another name")
        row = dict(study)
        row["params"] = json.dumps(row.get("params") or {}, sort_keys=True)
        row["segmentation_question"] = int(bool(row.get("segmentation_question")))
        row.setdefault("created_at", now())
        study_id = db["studies"].insert(row).last_pk
        rows = []
        for pos, s in enumerate(samples):
            r = dict(s)
            r.update(study_id=study_id, position=pos)
            if r.get("attributes") is not None:
                r["attributes"] = json.dumps(list(r["attributes"]))
            r["cot_issues"] = json.dumps(list(r.get("cot_issues") or []))
            r["extra"] = json.dumps(r.get("extra") or {}, sort_keys=True)
            rows.append(r)
        db["samples"].insert_all(rows, batch_size=200)
        return int(study_id)


def _count_samples(db: Database) -> dict[int, int]:
    return {r[0]: r[1] for r in db.execute("SELECT study_id, COUNT(*) FROM samples GROUP BY study_id")}


def list_studies(path: Path | str) -> list[Study]:
    with reading(path) as db:
        counts = _count_samples(db)
        return [_study(r, counts.get(r["id"], 0)) for r in db.query("SELECT * FROM studies ORDER BY id")]


def get_study(path: Path | str, study_id: int) -> Study:
    with reading(path) as db:
        rows = list(db.query("SELECT * FROM studies WHERE id = ?", [int(study_id)]))
        if not rows:
            raise StoreError(f"no study #{study_id} in {path}")
        n = db.execute("SELECT COUNT(*) FROM samples WHERE study_id = ?", [int(study_id)]).fetchone()[0]
        return _study(rows[0], n)


def find_study(path: Path | str, ref: int | str) -> Study:
    """A study by id (``3`` or ``"#3"``) or by exact name."""
    text = str(ref).strip().lstrip("#")
    if text.isdigit():
        return get_study(path, int(text))
    for study in list_studies(path):
        if study.name == str(ref).strip():
            return study
    raise StoreError(f"no study named {ref!r} in {path}")


def get_samples(path: Path | str, study_id: int) -> list[Sample]:
    with reading(path) as db:
        return [_sample(r) for r in db.query(
            "SELECT * FROM samples WHERE study_id = ? ORDER BY position", [int(study_id)])]


def get_sample(path: Path | str, study_id: int, position: int) -> Sample:
    with reading(path) as db:
        rows = list(db.query("SELECT * FROM samples WHERE study_id = ? AND position = ?",
                             [int(study_id), int(position)]))
        if not rows:
            raise StoreError(f"study #{study_id} has no item {int(position) + 1}")
        return _sample(rows[0])


def set_sample_cot(
    path: Path | str, sample_id: int, *, reasoning: str, attributes: Sequence[str], raw: str = "",
    issues: Sequence[str] = (), backbone: str = "", prompt_version: str = "", source: str = "generated",
    overwrite: bool = False,
) -> bool:
    """Store a sample's CoT output; without ``overwrite`` an existing one is kept (returns False)."""
    with writing(path) as db:
        cur = db.execute(
            "UPDATE samples SET reasoning = ?, attributes = ?, cot_raw = ?, cot_issues = ?, backbone = ?, "
            "prompt_version = ?, attributes_source = ?, generated_at = ?, gen_error = NULL "
            "WHERE id = ? AND (attributes IS NULL OR ?)",
            [reasoning, json.dumps(list(attributes)), raw, json.dumps(list(issues)), backbone,
             prompt_version, source, now(), int(sample_id), int(bool(overwrite))],
        )
        return cur.rowcount == 1


def set_sample_cots(path: Path | str, updates: Sequence[dict[str, Any]], overwrite: bool = False) -> int:
    """Several ``set_sample_cot`` in one transaction (an import is all or nothing); returns how many
    samples changed."""
    changed = 0
    with writing(path) as db:
        for u in updates:
            cur = db.execute(
                "UPDATE samples SET reasoning = ?, attributes = ?, cot_raw = ?, cot_issues = ?, "
                "backbone = ?, prompt_version = ?, attributes_source = ?, generated_at = ?, "
                "gen_error = NULL WHERE id = ? AND (attributes IS NULL OR ?)",
                [u["reasoning"], json.dumps(list(u["attributes"])), u.get("raw", ""),
                 json.dumps(list(u.get("issues", ()))), u.get("backbone", ""),
                 u.get("prompt_version", ""), u.get("source", "imported"), now(), int(u["sample_id"]),
                 int(bool(overwrite))],
            )
            changed += cur.rowcount
    return changed


def set_sample_error(path: Path | str, sample_id: int, message: str) -> None:
    with writing(path) as db:
        db.execute("UPDATE samples SET gen_error = ? WHERE id = ? AND attributes IS NULL",
                   [message[:2000], int(sample_id)])


# ---------------------------------------------------------------- judgements

def record_judgement(
    path: Path | str, study_id: int, position: int, annotator: str, label: Any, note: str = "",
    question: str = "reasoning",
) -> Judgement:
    """Insert or change one answer. A changed answer updates the row (revision + 1) and appends
    to ``judgement_history``; resubmitting the same answer changes nothing (no duplicates)."""
    annotator = normalise_annotator(annotator)
    label = normalise_label(label)
    question = normalise_question(question)
    note = normalise_note(note)
    with writing(path) as db:
        row = db.execute("SELECT id, attributes FROM samples WHERE study_id = ? AND position = ?",
                         [int(study_id), int(position)]).fetchone()
        if row is None:
            raise StoreError(f"study #{study_id} has no item {int(position) + 1}")
        sample_id, attrs = row
        if question == "reasoning" and attrs is None:
            raise InputError(f"item {int(position) + 1} has no attributes yet; generate or import them first")
        old = db.execute(
            "SELECT label, note FROM judgements WHERE sample_id = ? AND annotator = ? AND question = ?",
            [sample_id, annotator, question]).fetchone()
        if old is None or tuple(old) != (label, note):
            stamp = now()
            db.execute(
                "INSERT INTO judgements (sample_id, study_id, annotator, question, label, note, "
                "created_at, updated_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
                "ON CONFLICT(sample_id, annotator, question) DO UPDATE SET label = excluded.label, "
                "note = excluded.note, updated_at = excluded.updated_at, revision = revision + 1",
                [sample_id, int(study_id), annotator, question, label, note, stamp, stamp])
            jrow = dict(next(db.query(
                "SELECT * FROM judgements WHERE sample_id = ? AND annotator = ? AND question = ?",
                [sample_id, annotator, question])))
            db["judgement_history"].insert({
                "judgement_id": jrow["id"], "sample_id": sample_id, "study_id": int(study_id),
                "annotator": annotator, "question": question, "label": label, "note": note,
                "revision": jrow["revision"], "recorded_at": stamp})
        else:
            jrow = dict(next(db.query(
                "SELECT * FROM judgements WHERE sample_id = ? AND annotator = ? AND question = ?",
                [sample_id, annotator, question])))
        return _judgement(jrow)


def get_judgements(
    path: Path | str, study_id: int, annotator: str | None = None, question: str | None = None,
) -> list[Judgement]:
    sql = "SELECT * FROM judgements WHERE study_id = ?"
    args: list[Any] = [int(study_id)]
    if annotator is not None:
        sql += " AND annotator = ?"
        args.append(normalise_annotator(annotator))
    if question is not None:
        sql += " AND question = ?"
        args.append(normalise_question(question))
    with reading(path) as db:
        return [_judgement(r) for r in db.query(sql + " ORDER BY id", args)]


def get_history(path: Path | str, study_id: int) -> list[dict[str, Any]]:
    with reading(path) as db:
        return list(db.query("SELECT * FROM judgement_history WHERE study_id = ? ORDER BY id",
                             [int(study_id)]))


def annotators(path: Path | str, study_id: int) -> list[str]:
    with reading(path) as db:
        return [r[0] for r in db.execute(
            "SELECT DISTINCT annotator FROM judgements WHERE study_id = ? ORDER BY annotator",
            [int(study_id)])]


# ---------------------------------------------------------------- per-annotator cursor

def set_cursor(path: Path | str, study_id: int, annotator: str, position: int) -> None:
    """Remember where an annotator is, so a refresh or a later visit resumes there."""
    annotator = normalise_annotator(annotator)
    with writing(path) as db:
        db.execute(
            "INSERT INTO annotator_state (study_id, annotator, position, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(study_id, annotator) DO UPDATE SET position = excluded.position, "
            "updated_at = excluded.updated_at",
            [int(study_id), annotator, int(position), now()])


def get_cursor(path: Path | str, study_id: int, annotator: str) -> int | None:
    annotator = normalise_annotator(annotator)
    with reading(path) as db:
        row = db.execute("SELECT position FROM annotator_state WHERE study_id = ? AND annotator = ?",
                         [int(study_id), annotator]).fetchone()
        return None if row is None else int(row[0])


# ---------------------------------------------------------------- segmentation scores

def set_seg_scores(path: Path | str, study_id: int, rows: Sequence[dict[str, Any]], source: str) -> int:
    """Replace the study's per-sample J&F (rows: sample_id, jf, optional j, f) in one transaction."""
    with writing(path) as db:
        db.execute("DELETE FROM seg_scores WHERE study_id = ?", [int(study_id)])
        stamp = now()
        db["seg_scores"].insert_all(
            [{"sample_id": int(r["sample_id"]), "study_id": int(study_id), "jf": float(r["jf"]),
              "j": r.get("j"), "f": r.get("f"), "source": source, "imported_at": stamp} for r in rows])
        return len(rows)


def get_seg_scores(path: Path | str, study_id: int) -> dict[int, float]:
    """sample_id → J&F of the study's imported evaluation run (empty if none)."""
    with reading(path) as db:
        return {r[0]: r[1] for r in db.execute(
            "SELECT sample_id, jf FROM seg_scores WHERE study_id = ?", [int(study_id)])}
