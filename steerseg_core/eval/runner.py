"""Run a predictor over a benchmark, one expression at a time, so that any crash costs at most the
expression in flight; shard the work (``--shard i/n``, or accelerate's process splitting under
``accelerate launch``), merge the shards, and summarise.

An expression counts as done only when its record exists (``rundir.py``), so a killed run resumes
where it stopped; errored expressions are recorded (scored as empty masks, the masks removed) and
retried on the next run. Missing frames or ground truth stop the run with a message instead.
Each record keeps every candidate tracklet's scores and J/F (``records.py``).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np
from PIL import Image

from ..config import SteerSegConfig, distributed_env
from ..datasets import Benchmark, Expression, open_benchmark
from ..datasets.masks_io import read_binary_masks, write_binary_masks
from ..errors import InputError
from ..files import atomic_write_bytes
from ..types import Clip, SegmentationResult
from .records import build_record, error_record
from .rundir import RunDir, config_differences, init_run_dir, now, write_json
from .submission import write_submission_zip
from .summaries import extra_scores, summarize
from .tables import summary_markdown

__all__ = ["Predictor", "PredictorFactory", "ProcessGroup", "RunDir", "RunOptions", "load_predictor_factory", "merge_runs",
           "run_benchmark", "score_mask_folder", "select_expressions", "shard_expressions", "write_json",
           "write_summary"]


class Predictor(Protocol):
    """Anything that segments a clip from an expression (``SteerSeg`` is one)."""

    def run(self, clip: Clip, expression: str) -> SegmentationResult: ...


PredictorFactory = Callable[[SteerSegConfig], Predictor]


def default_predictor(config: SteerSegConfig) -> Predictor:
    """The SteerSeg pipeline, imported only when a run needs it."""
    from ..pipeline import SteerSeg

    return SteerSeg(config)


def load_predictor_factory(spec: str) -> PredictorFactory:
    """``module:callable`` or ``path/to/file.py:callable`` → a factory ``f(config) -> Predictor``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InputError(f"--predictor {spec!r}: expected MODULE:CALLABLE or FILE.py:CALLABLE")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise InputError(f"--predictor: file not found: {path}")
        mod_spec = importlib.util.spec_from_file_location(f"_steerseg_predictor_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise InputError(f"--predictor: {target} has no {attr!r}") from err


# --- selection and sharding --------------------------------------------------------------------

def select_expressions(exprs: Sequence[Expression], videos: Sequence[str] | None = None,
                       limit: int | None = None) -> list[Expression]:
    """Expressions of the given videos (all when None), the first ``limit`` of them."""
    out = list(exprs)
    if videos:
        wanted = set(videos)
        unknown = wanted - {e.video for e in out}
        if unknown:
            raise InputError(f"unknown video(s): {', '.join(sorted(unknown))}")
        out = [e for e in out if e.video in wanted]
    if limit is not None:
        out = out[: max(int(limit), 0)]
    return out


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError as err:
        raise InputError(f"--shard {text!r}: expected i/n, e.g. 0/4") from err
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def video_groups(exprs: Sequence[Expression]) -> list[list[Expression]]:
    """The expressions grouped by video (a clip is loaded once per process), first-seen order."""
    groups: dict[str, list[Expression]] = {}
    for e in exprs:
        groups.setdefault(e.video, []).append(e)
    return list(groups.values())


class ProcessGroup:
    """The processes of an ``accelerate launch`` (or torchrun) evaluation, through accelerate.

    accelerate's ``split_between_processes`` hands each process a contiguous run of whole videos;
    every process writes its records into the one run folder; at the end all wait for each other
    and process 0 writes the summary of the whole run (the same files a single process writes).
    The final wait lasts as long as the slowest process, so the process group is created with a
    long timeout instead of the launcher's default (minutes).
    """

    FINISH_TIMEOUT = _dt.timedelta(hours=72)

    def __init__(self, cpu: bool) -> None:
        try:
            from accelerate import PartialState
        except ImportError as err:  # pragma: no cover - accelerate is a dependency
            raise InputError("a multi-process eval needs accelerate (pip install accelerate), "
                             "or run each part with --shard i/n") from err
        self.state = PartialState(cpu=cpu, timeout=self.FINISH_TIMEOUT)
        self.rank, self.world = self.state.process_index, self.state.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def split(self, exprs: Sequence[Expression]) -> list[Expression]:
        with self.state.split_between_processes(video_groups(exprs)) as mine:
            return [e for group in mine for e in group]

    def main_first(self):
        return self.state.main_process_first()

    def wait(self) -> None:
        self.state.wait_for_everyone()


def _uses_cpu(config: SteerSegConfig) -> bool:
    return all(str(d).startswith("cpu") for d in (config.grounding.device, config.segment.device))


def shard_expressions(exprs: Sequence[Expression], index: int, count: int) -> list[Expression]:
    """Shard ``index`` of ``count``: whole videos (a clip is loaded once), balanced by expression
    count (largest videos first, each to the least-loaded shard), original order kept."""
    if count <= 1:
        return list(exprs)
    sizes: dict[str, int] = {}
    for e in exprs:
        sizes[e.video] = sizes.get(e.video, 0) + 1
    order = sorted(sizes, key=lambda v: -sizes[v])  # stable: ties keep first-seen order
    load = [0] * count
    owner: dict[str, int] = {}
    for v in order:
        k = min(range(count), key=lambda s: (load[s], s))
        owner[v] = k
        load[k] += sizes[v]
    return [e for e in exprs if owner[e.video] == index]


# --- clips ---------------------------------------------------------------------------------------

def load_frames(paths: Sequence[Path], names: Sequence[str], source: str, fps: float = 24.0) -> Clip:
    """A Clip of exactly these image files (benchmark frame lists are not always whole folders)."""
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(np.asarray(im.convert("RGB")))
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise InputError(f"{source}: frames differ in size: {sorted(shapes)}")
    return Clip(np.stack(frames), float(fps), source, tuple(names))


# --- progress ------------------------------------------------------------------------------------

def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class Progress:
    """One line per finished expression: count, key, score, time, elapsed and ETA."""

    def __init__(self, total: int, stream: TextIO | None = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream

    def update(self, record: dict, seconds: float) -> None:
        self.done += 1
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        score = f"J&F {100 * record['JF']:.1f}" if record.get("JF") is not None else "no GT"
        state = "" if record["status"] == "ok" else f"  ERROR {record.get('error', '')[:80]}"
        print(f"[{self.done}/{self.total}] {record['key']}  {score}  {seconds:.1f}s  "
              f"elapsed {_fmt_seconds(elapsed)}  ETA {_fmt_seconds(eta)}{state}", file=self.stream, flush=True)


# --- the run -------------------------------------------------------------------------------------

@dataclass
class RunOptions:
    videos: Sequence[str] | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    retry_errors: bool = True
    stream: TextIO | None = sys.stderr
    predictor_name: str = "steerseg"


def run_benchmark(bench: Benchmark, out: Path | str, config: SteerSegConfig | None = None,
                  predictor: Predictor | PredictorFactory | None = None,
                  options: RunOptions | None = None) -> dict:
    """Segment and score every selected expression not yet done; returns the summary written.

    ``predictor`` is a Predictor, or a factory called with ``config`` only if there is work to do.
    Under ``accelerate launch`` / torchrun (world size > 1, no explicit ``options.shard``) the
    processes split the expressions through accelerate and share ``out`` (``ProcessGroup``).
    """
    config = config or SteerSegConfig()
    opts = options or RunOptions()
    run = RunDir(out)
    group = ProcessGroup(_uses_cpu(config)) if opts.shard is None and distributed_env().world_size > 1 else None
    if group is None:
        init_run_dir(run, bench, config, opts.predictor_name)
    else:
        with group.main_first():  # one process creates run.json, the others check it
            init_run_dir(run, bench, config, opts.predictor_name)
    selected = select_expressions(bench.expressions(), opts.videos, opts.limit)
    if group is not None:
        shard, mine = (group.rank, group.world), group.split(selected)
    else:
        shard = opts.shard or (0, 1)
        mine = shard_expressions(selected, *shard)
    records = run.load_records()
    todo = [e for e in mine if e.key not in records
            or (opts.retry_errors and records[e.key].get("status") != "ok")]
    if opts.stream is not None:
        print(f"{bench.title} {bench.split}: {len(selected)} expressions selected, shard {shard[0]}/{shard[1]} "
              f"has {len(mine)}, {len(mine) - len(todo)} already done, {len(todo)} to run", file=opts.stream)
    if todo:
        if predictor is None or isinstance(predictor, type) or not hasattr(predictor, "run"):
            model = (predictor or default_predictor)(config)
        else:
            model = predictor
        progress = Progress(len(todo), opts.stream)
        clip_cache: tuple[tuple[str, tuple[str, ...]], Clip] | None = None
        for expr in todo:
            t0 = time.monotonic()
            # Data problems (missing frames or GT) stop the run with a message; model failures
            # are recorded per expression and the run goes on.
            gt = bench.load_gt(expr) if bench.has_gt else None
            cache_key = (expr.video, expr.frames)
            if clip_cache is None or clip_cache[0] != cache_key:
                clip_cache = (cache_key, load_frames(bench.image_paths(expr), expr.frames,
                                                     str(bench.frames_dir(expr.video))))
            clip = clip_cache[1]
            try:
                result = model.run(clip, expr.text)
                masks = np.asarray(result.masks, dtype=bool) if result.tracklets else np.zeros(
                    (clip.num_frames, clip.height, clip.width), dtype=bool)
                if masks.shape != (clip.num_frames, clip.height, clip.width):
                    raise InputError(f"predictor returned masks of shape {masks.shape} for a clip of "
                                     f"{(clip.num_frames, clip.height, clip.width)}")
                write_binary_masks(run.mask_dir(expr), expr.frames, masks)
                record = build_record(expr, expr.frames, masks, gt, result)
                record.update(extra_scores(bench, expr, expr.frames, masks, gt))
            except Exception as err:  # one bad expression must not end a long run
                shutil.rmtree(run.mask_dir(expr), ignore_errors=True)  # its masks count as empty
                record = error_record(expr, expr.frames, gt, err)
                if gt is not None:  # scored as the empty masks it counts as
                    empty = np.zeros((len(expr.frames), *gt.masks.shape[1:]), dtype=bool)
                    record.update(extra_scores(bench, expr, expr.frames, empty, gt))
            record["seconds"] = time.monotonic() - t0
            record["shard"] = f"{shard[0]}/{shard[1]}"
            record["finished"] = now()
            run.write_record(record)
            progress.update(record, record["seconds"])
    if group is None:
        return write_summary(bench, run, selected, config=config)
    group.wait()  # every record of every process is on disk
    summary = write_summary(bench, run, selected, config=config) if group.main else None
    group.wait()
    return summary if summary is not None else json.loads((run.root / "summary.json").read_text(encoding="utf-8"))


def score_mask_folder(bench: Benchmark, pred_dir: Path | str, out: Path | str,
                      options: RunOptions | None = None) -> dict:
    """Score masks already on disk (``<key>/<frame>.png``, key = ``<video>/<exp_id>`` or the
    benchmark's own layout, e.g. ReasonVOS ``<source>_<video>_<obj_id>/<exp_id>``) with the
    benchmark's protocol. Missing files are scored as empty; an expression without a folder is
    marked ``prediction_missing`` (ReasonVOS reports the official number without those too)."""
    opts = options or RunOptions()
    if not bench.has_gt:
        raise InputError(f"{bench.title} {bench.split} has no public ground truth to score against")
    run = RunDir(out)
    init_run_dir(run, bench, None, f"masks:{Path(pred_dir).resolve()}")
    selected = select_expressions(bench.expressions(), opts.videos, opts.limit)
    progress = Progress(len(selected), opts.stream)
    missing_total = 0
    for expr in selected:
        t0 = time.monotonic()
        gt = bench.load_gt(expr)
        folder = Path(pred_dir) / expr.key
        masks, missing = read_binary_masks(folder, expr.frames, gt.masks.shape[1:])
        missing_total += len(missing)
        if Path(pred_dir).resolve() != run.masks_dir.resolve():
            write_binary_masks(run.mask_dir(expr), expr.frames, masks)
        record = build_record(expr, expr.frames, masks, gt)
        record.update(extra_scores(bench, expr, expr.frames, masks, gt))
        record["missing_masks"] = len(missing)
        record["prediction_missing"] = not folder.is_dir()
        run.write_record(record)
        progress.update(record, time.monotonic() - t0)
    notes = [f"{missing_total} mask files missing, scored as empty"] if missing_total else []
    return write_summary(bench, run, selected, notes=notes)


def write_summary(bench: Benchmark, run: RunDir, selected: Sequence[Expression],
                  config: SteerSegConfig | None = None, notes: Sequence[str] = ()) -> dict:
    """Summarise the records of ``selected`` present in the run; write summary.json / .md (and the
    server zip for benchmarks without public GT once every expression is done)."""
    records = run.load_records()
    keys = {e.key for e in selected}
    recs = [records[k] for k in (e.key for e in selected) if k in records]
    summary = summarize(bench, recs, run.root)
    meta = run.meta() or {}
    summary["config"] = meta.get("config") or (config.to_dict() if config else None)
    summary["predictor"] = meta.get("predictor")
    if str(summary["predictor"] or "").startswith("masks:"):
        summary["label"] = Path(summary["predictor"][6:]).name
    summary["notes"] = list(summary.get("notes", [])) + list(notes)
    summary["expressions"] = {"done": len(recs), "total": len(keys),
                              "errors": sum(1 for r in recs if r.get("status") != "ok")}
    summary["complete"] = len(recs) == len(keys)
    summary["written"] = now()
    if not bench.has_gt and summary["complete"] and recs:
        summary["submission"] = write_submission_zip(bench, run.masks_dir, run.root / "submission.zip", list(selected))
    write_json(run.root / "summary.json", summary)
    atomic_write_bytes(run.root / "summary.md", summary_markdown(summary).encode("utf-8"))
    return summary


def merge_runs(out: Path | str, sources: Sequence[Path | str], data_root: Path | str | None = None,
               stream: TextIO | None = sys.stderr) -> dict:
    """Combine shard run directories into ``out`` (records and masks), then summarise all of it.

    Every source must be the same benchmark and configuration. ``out`` may be one of the sources
    (or the only one: then this just rebuilds the summary).
    """
    out_run = RunDir(out)
    metas = [(Path(s), RunDir(s).meta()) for s in sources] or [(out_run.root, out_run.meta())]
    missing = [str(s) for s, m in metas if m is None]
    if missing:
        raise InputError(f"not a run directory (no run.json): {', '.join(missing)}")
    first = metas[0][1]
    for s, m in metas[1:]:
        diffs = config_differences(first.get("config", {}), m.get("config", {}))
        if (m.get("benchmark"), m.get("split")) != (first.get("benchmark"), first.get("split")):
            diffs.append("benchmark")
        if m.get("predictor") != first.get("predictor"):
            diffs.append("predictor")
        if diffs:
            raise InputError(f"{s} differs from {metas[0][0]} in: {', '.join(diffs)}")
    bench = open_benchmark(first["benchmark"], data_root or first["data_root"], first.get("split"),
                           **first.get("options", {}))
    if out_run.meta() is None:
        out_run.root.mkdir(parents=True, exist_ok=True)
        write_json(out_run.root / "run.json", {**first, "merged_from": [str(s) for s, _ in metas]})
    n_copied = 0
    out_resolved = out_run.root.resolve()
    by_key = {e.key: e for e in bench.expressions()}
    for src, _ in metas:
        if src.resolve() == out_resolved:
            continue
        src_run = RunDir(src)
        for key, rec in src_run.load_records().items():
            have = out_run.load_record(key)
            if have is not None and have.get("status") == "ok" and rec.get("status") != "ok":
                continue
            expr = by_key.get(key)
            if expr is not None:
                src_masks = src_run.mask_dir(expr)
                for p in sorted(src_masks.glob("*.png")) if src_masks.is_dir() else []:
                    atomic_write_bytes(out_run.mask_dir(expr) / p.name, p.read_bytes(), durable=False)
            out_run.write_record(rec)
            n_copied += 1
    if stream is not None:
        print(f"merged {n_copied} expression records into {out_run.root}", file=stream)
    return write_summary(bench, out_run, bench.expressions())
