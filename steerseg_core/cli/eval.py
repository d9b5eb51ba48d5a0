"""Evaluation subcommands of ``python -m steerseg_core``:

* ``eval-masks GT_DIR PRED_DIR --mode ...`` — score mask folders (DAVIS layout) exactly as the
  official code, JSON report.
* ``eval BENCHMARK --data-root ROOT --out RUN_DIR`` — run the pipeline over a benchmark
  (resumable, ``--shard i/n``, or split across processes by ``accelerate launch``), or score
  existing masks with ``--pred-dir``.
* ``eval-merge OUT_DIR SHARD_DIR...`` — combine shard runs and write the full summary.
* ``eval-ablation {components,n-prompts,alpha,normalisation}`` — a named ablation grid and its table.
* ``eval-table RUN_DIR...`` — several benchmarks' summaries as one row of the main table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import SteerSegConfig, distributed_env
from ..datasets import BENCHMARKS, open_benchmark
from ..errors import InputError
from .options import add_run_options, apply_run_options

FOLDER_MODES = ("semi-supervised", "unsupervised", "all-frames")


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="JSON file with a configuration (SteerSegConfig.to_dict layout)")
    p.add_argument("--predictor", help="MODULE:CALLABLE or FILE.py:CALLABLE returning a predictor for a "
                                       "config (default: the SteerSeg pipeline)")
    add_run_options(p)


def config_from_args(args: argparse.Namespace) -> SteerSegConfig:
    if args.config:
        try:
            cfg = SteerSegConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise InputError(f"--config {args.config}: {err}") from err
    else:
        cfg = SteerSegConfig.from_env()
    cfg = apply_run_options(cfg, args)
    dist = distributed_env()
    if args.device is None and dist.world_size > 1 and dist.local_rank is not None:
        cfg.grounding.device = cfg.segment.device = f"cuda:{dist.local_rank}"  # accelerate launch
    return cfg


def _predictor(args: argparse.Namespace):
    from ..eval.runner import load_predictor_factory

    return (load_predictor_factory(args.predictor), args.predictor) if args.predictor else (None, "steerseg")


def add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", help="benchmark split (default: the evaluation split)")
    p.add_argument("--limit", type=int, help="only the first N expressions (quick runs)")
    p.add_argument("--videos", nargs="+", metavar="VIDEO", help="only these videos")
    p.add_argument("--shard", help="i/n: run the i-th of n parts (merge with eval-merge); under "
                                   "accelerate launch the processes split the work without it")
    p.add_argument("--quiet", action="store_true", help="no per-expression progress lines")


# --- handlers ------------------------------------------------------------------------------------

def cmd_eval_masks(args: argparse.Namespace) -> int:
    from ..eval.folder_eval import KEYS, evaluate_folders

    def progress(i: int, n: int, seq: str) -> None:
        if not args.quiet:
            print(f"[{i}/{n}] {seq}", file=sys.stderr, flush=True)

    report = evaluate_folders(args.gt_dir, args.pred_dir, args.mode, args.sequences, args.workers,
                              progress=progress)
    print(" | ".join(KEYS))
    print(" | ".join(_fmt(report[k]) for k in KEYS))
    print()
    print(f"{'Sequence':<32} J-Mean  F-Mean")
    for name, seq in report["sequences"].items():
        rows = seq.get("objects") or {"": seq}
        for oid, r in rows.items():
            label = f"{name}_{oid}" if oid else name
            print(f"{label:<32} {_fmt(r.get('J-Mean'))}  {_fmt(r.get('F-Mean'))}")
    if report["missing_predictions"]:
        print(f"warning: {len(report['missing_predictions'])} prediction files missing, scored as empty "
              f"(first: {report['missing_predictions'][0]})", file=sys.stderr)
    if args.json:
        from ..eval.runner import write_json

        write_json(args.json, report)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _fmt(v: object) -> str:
    return "  nan " if v is None or v != v else f"{float(v):.4f}"


def cmd_eval(args: argparse.Namespace) -> int:
    from ..eval.runner import RunOptions, parse_shard, run_benchmark, score_mask_folder
    from ..eval.tables import summary_markdown

    options = {"include_test": True} if args.include_test_videos else {}
    bench = open_benchmark(args.benchmark, args.data_root, args.split, **options)
    opts = RunOptions(videos=args.videos, limit=args.limit,
                      shard=parse_shard(args.shard) if args.shard else None,
                      stream=None if args.quiet else sys.stderr)
    if args.pred_dir:
        summary = score_mask_folder(bench, args.pred_dir, args.out, opts)
    else:
        factory, name = _predictor(args)
        opts.predictor_name = name
        summary = run_benchmark(bench, args.out, config_from_args(args), factory, opts)
    if distributed_env().rank != 0 and not args.shard:
        return 1 if summary["expressions"]["errors"] else 0  # under accelerate launch process 0 reports
    print(summary_markdown(summary))
    if not summary["complete"]:
        print(f"partial: {summary['expressions']['done']}/{summary['expressions']['total']} expressions in "
              f"{args.out}; rerun to resume, or eval-merge the shards", file=sys.stderr)
    return 1 if summary["expressions"]["errors"] else 0


def cmd_eval_merge(args: argparse.Namespace) -> int:
    from ..eval.runner import merge_runs
    from ..eval.tables import summary_markdown

    summary = merge_runs(args.out, args.shards or [args.out], args.data_root)
    print(summary_markdown(summary))
    return 0 if summary["complete"] else 1


def cmd_eval_ablation(args: argparse.Namespace) -> int:
    from ..eval import ablation

    if args.grid == "alpha":
        if not args.runs:
            raise InputError("eval-ablation alpha needs --runs RUN_DIR [RUN_DIR ...]")
        alphas = [float(a) for a in args.alphas.split(",")]
        table = ablation.alpha_markdown(ablation.alpha_sweep(args.runs, alphas, args.data_root))
    else:
        benches = _benchmark_roots(args)
        from ..eval.runner import RunOptions, parse_shard

        variants = (ablation.component_variants() if args.grid == "components"
                    else ablation.normalisation_variants() if args.grid == "normalisation"
                    else ablation.n_prompt_variants(ablation.parse_checkpoints(args.checkpoints or [])))
        factory, name = _predictor(args)
        opts = RunOptions(videos=args.videos, limit=args.limit, predictor_name=name,
                          shard=parse_shard(args.shard) if args.shard else None,
                          stream=None if args.quiet else sys.stderr)
        config = config_from_args(args)
        for bench_name, root in benches:
            ablation.run_grid(variants, bench_name, root, args.out, config, factory, opts, args.split)
        table = ablation.grid_table(args.grid, args.out, variants)
        from ..files import atomic_write_bytes

        atomic_write_bytes(Path(args.out) / f"ablation-{args.grid}.md", table.encode("utf-8"))
    print(table)
    if args.table:
        Path(args.table).write_text(table, encoding="utf-8")
    return 0


def _benchmark_roots(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """``--benchmark NAME --data-root ROOT`` or ``--benchmark NAME=ROOT [NAME=ROOT ...]``."""
    if not args.benchmark or not args.out:
        raise InputError(f"eval-ablation {args.grid} needs --benchmark (NAME with --data-root, or NAME=ROOT ...) "
                         "and --out")
    out = []
    for item in args.benchmark:
        name, sep, root = item.partition("=")
        if not sep:
            if args.data_root is None:
                raise InputError(f"--benchmark {item}: give --data-root, or write {item}=ROOT")
            root = str(args.data_root)
        out.append((name, Path(root)))
    return out


def cmd_eval_table(args: argparse.Namespace) -> int:
    from ..eval.tables import main_table_markdown

    summaries = []
    for d in args.runs:
        p = Path(d) / "summary.json"
        if not p.is_file():
            raise InputError(f"no summary.json in {d}")
        summaries.append(json.loads(p.read_text(encoding="utf-8")))
    print(main_table_markdown(summaries, args.label))
    return 0


# --- registration --------------------------------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    names = ", ".join(BENCHMARKS)
    p = subparsers.add_parser("eval-masks", help="score predicted mask folders against ground truth (J, F, J&F)",
                              description="Score DAVIS-layout mask folders (<seq>/<frame>.png, 0/255 or "
                                          "indexed) exactly as davis2017-evaluation does.")
    p.add_argument("gt_dir", type=Path)
    p.add_argument("pred_dir", type=Path)
    p.add_argument("--mode", choices=FOLDER_MODES, default="semi-supervised")
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--sequences", nargs="+", help="only these sequences")
    p.add_argument("--workers", type=int, help="parallel processes (default: CPU count, at most 8)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_eval_masks)

    p = subparsers.add_parser("eval", help=f"run and score a benchmark ({names})",
                              description="Run the pipeline over a benchmark, writing masks and per-expression "
                                          "metrics as it goes; rerun the same command to resume.")
    p.add_argument("benchmark", help=names)
    p.add_argument("--data-root", required=True, type=Path, help="the benchmark's folder, official layout")
    p.add_argument("--out", required=True, type=Path, help="run directory (created, or resumed)")
    p.add_argument("--pred-dir", type=Path, help="score these masks (<video>/<exp_id>/<frame>.png; ReasonVOS: "
                                                 "<source>_<video>_<obj_id>/<exp_id>/<frame>.png) instead of "
                                                 "running the pipeline")
    p.add_argument("--include-test-videos", action="store_true",
                   help="Ref-YouTube-VOS: keep the test-phase videos the valid meta file also lists (by default "
                        "meta_expressions/test/meta_expressions.json is required and its videos are removed)")
    add_selection_options(p)
    add_config_options(p)
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("eval-merge", help="combine shard runs of a benchmark and write the summary")
    p.add_argument("out", type=Path, help="merged run directory (may be one of the shards)")
    p.add_argument("shards", nargs="*", type=Path, help="shard run directories (none: re-summarise OUT)")
    p.add_argument("--data-root", type=Path, help="benchmark folder if it moved since the run")
    p.set_defaults(func=cmd_eval_merge)

    p = subparsers.add_parser("eval-ablation", help="run a named ablation grid and print its table")
    p.add_argument("grid", choices=("components", "n-prompts", "alpha", "normalisation"))
    p.add_argument("--benchmark", nargs="+", metavar="NAME[=ROOT]",
                   help=f"one or more of {names}; NAME=ROOT gives each its own data root")
    p.add_argument("--data-root", type=Path, help="data root of a single --benchmark NAME")
    p.add_argument("--out", type=Path, help="grid folder: OUT/<benchmark>/<variant>/ run directories")
    p.add_argument("--checkpoints", nargs="+", metavar="N=PATH", help="n-prompts: one soft-prompt checkpoint per N_p")
    p.add_argument("--runs", nargs="+", type=Path, help="alpha: finished run directories to re-score")
    p.add_argument("--alphas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="alpha: values to try")
    p.add_argument("--table", type=Path, help="also write the markdown table here")
    add_selection_options(p)
    add_config_options(p)
    p.set_defaults(func=cmd_eval_ablation)

    p = subparsers.add_parser("eval-table", help="several benchmark runs as one row of the main results table")
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--label", help="row label (default: from the configuration)")
    p.set_defaults(func=cmd_eval_table)
