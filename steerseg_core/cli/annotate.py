"""`python -m steerseg_core annotate ...`: create a study, generate or import its attributes,
attach evaluation J&F, print statistics, export everything.

    annotate create meta_expressions.json --frames DIR --name reasonvos-132 [--n 132 --seed 0]
    annotate create /data/ReVOS --benchmark revos --name revos-100 --n 100
    annotate generate reasonvos-132 [--backbone Qwen/Qwen2.5-VL-7B-Instruct]
    annotate import reasonvos-132 other_model.json          # judge another model's attributes
    annotate scores reasonvos-132 per_sample_jf.csv          # J&F per sample for the cross-table
    annotate stats reasonvos-132 [--json]
    annotate export reasonvos-132 --out results/
    annotate list

The database is ``--db`` or ``STEERSEG_DB`` (default annotations/steerseg.db).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..annotation import store
from ..annotation.stats import DEFAULT_JF_THRESHOLD, study_statistics
from ..annotation.studies import DEFAULT_N
from ..config import paths_from_env
from .options import add_run_options


def _db(args: argparse.Namespace) -> Path:
    return Path(args.db) if args.db else paths_from_env().db


def _create(args: argparse.Namespace) -> int:
    from ..annotation.studies import create_study

    study = create_study(
        _db(args), args.source, name=args.name, n=args.n, seed=args.seed, frames_root=args.frames,
        attributes=args.attributes, segmentation_question=args.segmentation_question,
        description=args.description or "", benchmark=args.benchmark, split=args.split)
    print(f"created study #{study.id} {study.name!r}: {study.n_samples} of {study.pool_size} items "
          f"({study.source_kind}), seed {study.seed}, database {_db(args)}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..annotation.studies import generate_attributes
    from ..errors import SteerSegError
    from .options import config_from_args

    try:
        from ..grounding import grounder as _grounder  # noqa: F401 heavy (torch, transformers): only now
    except ImportError as err:
        raise SteerSegError(f"attribute generation needs the grounding core ({err})") from err

    db = _db(args)
    study = store.find_study(db, args.study)
    from ..pipeline import cached_grounder

    cfg = config_from_args(args)
    # The CoT step runs without soft prompts: do not load (or check) a checkpoint for it.
    cfg.grounding.use_soft_prompts, cfg.grounding.soft_prompts = False, None
    grounder = cached_grounder(cfg.grounding, cfg.limits)
    bar = tqdm(total=None, unit="item", desc=f"study #{study.id}")

    def progress(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what)
        bar.refresh()

    report = generate_attributes(db, study.id, grounder.cot, progress, backbone=cfg.grounding.backbone,
                                 limits=cfg.limits)
    bar.close()
    print(f"generated {report.done}, already had attributes {report.already}, failed {report.failed}"
          + (f", written meanwhile by another run {report.skipped}" if report.skipped else ""))
    for line in report.errors[:20]:
        print(f"  {line}", file=sys.stderr)
    return 1 if report.failed else 0


def _import(args: argparse.Namespace) -> int:
    from ..annotation.studies import import_attributes

    db = _db(args)
    study = store.find_study(db, args.study)
    r = import_attributes(db, study.id, args.file, overwrite=args.overwrite, strict=args.strict)
    print(f"study #{study.id}: {r.updated} item(s) updated, {r.kept} kept (already had attributes; "
          f"--overwrite replaces them), {r.ignored} entr(ies) not in the study")
    return 0


def _scores(args: argparse.Namespace) -> int:
    from ..annotation.studies import import_segmentation_scores

    db = _db(args)
    study = store.find_study(db, args.study)
    n = import_segmentation_scores(db, study.id, args.file, strict=args.strict)
    print(f"study #{study.id}: J&F attached to {n} of {study.n_samples} items")
    return 0


def _stats(args: argparse.Namespace) -> int:
    db = _db(args)
    study = store.find_study(db, args.study)
    stats = study_statistics(db, study.id, jf_threshold=args.jf_threshold)
    if args.json:
        print(json.dumps({**stats.to_dict(), "summary": stats.summary_lines()}, indent=2))
        return 0
    print(f"study #{study.id} {study.name!r}: {stats.n_items} items, {stats.n_ready} with attributes")
    print(f"{'who':<24}{'labelled':>9}{'True':>6}{'False':>6}{'Skip':>6}{'accuracy':>10}  95 % CI")
    for r in (*stats.annotators, stats.consensus):
        acc = "n/a" if r.accuracy != r.accuracy else f"{100 * r.accuracy:.1f} %"
        ci = "" if r.ci_low != r.ci_low else f"{100 * r.ci_low:.1f}–{100 * r.ci_high:.1f} %"
        print(f"{r.who[:23]:<24}{r.n_labelled:>9}{r.n_true:>6}{r.n_false:>6}{r.n_skip:>6}{acc:>10}  {ci}")
    for p in stats.pairs:
        print(f"Cohen's kappa {p.a} / {p.b}: {p.kappa:.3f} over {p.n_items} items")
    if len(stats.annotators) > 2:
        print(f"Fleiss' kappa (all {len(stats.annotators)}): {stats.fleiss_kappa:.3f} over "
              f"{stats.fleiss_items} items")
    print(f"segmentation accuracy from: {stats.cross_table.seg_source}")
    for line in stats.summary_lines():
        print(line)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..annotation.export import export_study

    db = _db(args)
    study = store.find_study(db, args.study)
    paths = export_study(db, study.id, args.out, jf_threshold=args.jf_threshold, chart=not args.no_chart)
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def _list(args: argparse.Namespace) -> int:
    db = _db(args)
    for s in store.list_studies(db):
        print(f"#{s.id}\t{s.name}\t{s.n_samples} items\tseed {s.seed}\t{s.source_kind}\t{s.source_path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("annotate", help="reasoning study: create, generate attributes, statistics, export",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="database path (default: $STEERSEG_DB or annotations/steerseg.db)")
    cmds = p.add_subparsers(dest="annotate_command", metavar="ACTION")
    cmds.required = True

    c = cmds.add_parser("create", parents=[common], help="sample a study from a benchmark meta JSON or a CSV/JSON list")
    c.add_argument("source", help="meta_expressions.json, or a .csv/.json list of (video, expression)")
    c.add_argument("--frames", help="frames root of a meta JSON (default: beside the JSON)")
    c.add_argument("--benchmark", help="read SOURCE as this benchmark's root folder with the evaluation's "
                                       "reader: refdavis, refytvos, mevis, revos, reasonvos")
    c.add_argument("--split", help="benchmark split (default: the reader's first)")
    c.add_argument("--name", required=True, help="study name (unique)")
    c.add_argument("--n", type=int, default=DEFAULT_N, help=f"items to sample (default {DEFAULT_N})")
    c.add_argument("--seed", type=int, help="sampling seed (default: random, recorded)")
    c.add_argument("--attributes", help="attach attributes from this JSON file (another model's output)")
    c.add_argument("--segmentation-question", action="store_true",
                   help="also ask annotators whether the segmentation is accurate")
    c.add_argument("--description", help="free text stored with the study")
    c.set_defaults(func=_create)

    g = cmds.add_parser("generate", parents=[common], help="run the CoT step for items without attributes (resumable)")
    g.add_argument("study", help="study id or name")
    add_run_options(g, ("backbone", "device"))
    g.set_defaults(func=_generate)

    i = cmds.add_parser("import", parents=[common], help="attach attributes from another model's JSON output")
    i.add_argument("study", help="study id or name")
    i.add_argument("file", help="JSON list of {video, exp_id, reasoning, attributes}")
    i.add_argument("--overwrite", action="store_true", help="replace attributes the items already have")
    i.add_argument("--strict", action="store_true", help="refuse entries for items not in the study")
    i.set_defaults(func=_import)

    s = cmds.add_parser("scores", parents=[common], help="attach per-item J&F of an evaluation run (for the cross-table)")
    s.add_argument("study", help="study id or name")
    s.add_argument("file", help="CSV/JSON/JSONL rows with video, exp_id (or key, sequence) and J&F, "
                                "or an evaluation run folder (expressions/*.json)")
    s.add_argument("--strict", action="store_true", help="refuse rows for items not in the study")
    s.set_defaults(func=_scores)

    for name, func, helptext in (("stats", _stats, "print the study's statistics"),
                                 ("export", _export, "write judgements and statistics as CSV/JSON/PNG")):
        e = cmds.add_parser(name, parents=[common], help=helptext)
        e.add_argument("study", help="study id or name")
        e.add_argument("--jf-threshold", type=float, default=DEFAULT_JF_THRESHOLD,
                       help=f"J&F at or above which a segmentation counts as accurate "
                            f"(default {DEFAULT_JF_THRESHOLD})")
        if name == "stats":
            e.add_argument("--json", action="store_true", help="print JSON")
        else:
            e.add_argument("--out", required=True, help="output folder")
            e.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
        e.set_defaults(func=func)

    ls = cmds.add_parser("list", parents=[common], help="list the studies in the database")
    ls.set_defaults(func=_list)
