"""`python -m steerseg_core train ...`: soft-prompt training from a shell.

    python -m steerseg_core train --data /data/ref-youtube-vos --backbone Qwen/Qwen2.5-VL-7B-Instruct \\
        --out runs/qwen25 --export-dir checkpoints
    python -m steerseg_core train --out runs/qwen25 --resume          # continue after a stop/crash
    accelerate launch --multi_gpu --num_processes 4 -m steerseg_core train --data ... --out ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import DEFAULT_BACKBONE, distributed_env, paths_from_env
from ..training.config import TrainConfig, train_grounding
from .options import add_run_options

EPILOG = """\
Paper defaults: AdamW lr 5e-4, cosine with warmup, 6500 steps, effective batch 4, 16 input frames,
T_f = 16 / T_v = 8, N_p = 64. The query prompt is used without CoT attributes unless --cot.
Data: a Ref-YouTube-VOS train folder (meta_expressions.json + JPEGImages/ + Annotations/) or a
folder with expressions.json (see steerseg_core/training/data.py). Multi-GPU:
  accelerate launch --multi_gpu --num_processes N -m steerseg_core train --data ... --out ...
(the effective batch is split over the N processes). SIGTERM/Ctrl-C stop with a checkpoint;
--resume continues bit for bit on CPU.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser("train", help="train soft prompts for a backbone (Ref-YouTube-VOS or your own data)",
                       description=__doc__.split("\n\n")[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="dataset folder (Ref-YouTube-VOS train split or expressions.json folder)")
    p.add_argument("--out", required=True, help="run folder (metrics, checkpoints, final soft prompts)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup", type=int, default=d.warmup_steps, help="linear warmup steps before the cosine")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="effective batch (gradient accumulation)")
    p.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm)
    p.add_argument("--seed-frame", default=d.seed_frame, help="seed prompt text of the frame branch")
    p.add_argument("--seed-video", default=d.seed_video, help="seed prompt text of the video branch")
    p.add_argument("--init-from", help="start from this soft-prompt checkpoint instead of the seed prompts")
    p.add_argument("--input-frames", type=int, default=d.input_frames)
    p.add_argument("--frame-batch-size", type=int, default=d.frame_batch_size,
                   help="keyframe sequences per forward/backward chunk")
    p.add_argument("--branches", default=",".join(d.branches), help="frame,video (default both)")
    p.add_argument("--cot", action="store_true", help="train on the query prompt with CoT attributes, as inference uses it (generated once per expression, cached on disk per backbone and shared across runs; the form is recorded in the checkpoint)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--keep-checkpoints", type=int, default=d.keep_checkpoints)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--val-data", help="held-out dataset folder (default: hold out --val-samples videos of --data)")
    p.add_argument("--val-samples", type=int, default=d.val_samples)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--dtype", default=d.dtype)
    p.add_argument("--no-grad-checkpointing", action="store_true")
    p.add_argument("--no-autocast", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--export-dir", help="where the final soft prompts are copied for the app and CLI "
                   "(default: $STEERSEG_CHECKPOINTS or ./checkpoints)")
    p.add_argument("--no-export", action="store_true", help="keep the final soft prompts only in the run folder")
    p.add_argument("--log-every", type=int, default=d.log_every, help="log line every N steps (without a progress bar)")
    p.add_argument("--name", help="name of the exported soft prompts")
    p.add_argument("--run-id", help=argparse.SUPPRESS)
    p.add_argument("--lock-file", help="lock file enforcing one run per device (default: beside --out)")
    p.add_argument("--no-lock", action="store_true", help="do not take the one-run-per-device lock")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    add_run_options(p, ("backbone", "device", "t_frame", "t_video", "layers", "frame_tokens", "n_prompts"),
                    defaults={"backbone": DEFAULT_BACKBONE, "device": d.device, "t_frame": d.t_frame,
                              "t_video": d.t_video, "frame_tokens": d.frame_max_tokens, "n_prompts": d.n_prompts})
    p.add_argument("--frame-max-tokens", dest="frame_tokens", type=int, help=argparse.SUPPRESS)  # old spelling
    p.set_defaults(func=_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from ..training.runs import lock_for

    lock = None
    if not args.no_lock:
        lock = args.lock_file or str(lock_for(Path(args.out).resolve().parent, args.device).path)
    grounding = train_grounding(
        backbone=args.backbone, t_frame=args.t_frame, t_video=args.t_video, layers=args.layers,
        n_prompts=args.n_prompts, frame_max_tokens=args.frame_tokens, frame_batch_size=args.frame_batch_size,
        device=args.device, dtype=args.dtype, use_cot=args.cot)
    return TrainConfig(
        data=args.data or "", grounding=grounding, out=args.out, steps=args.steps, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup, batch_size=args.batch_size,
        max_grad_norm=args.max_grad_norm, seed_frame=args.seed_frame,
        seed_video=args.seed_video, init_from=args.init_from, input_frames=args.input_frames,
        branches=tuple(b.strip() for b in args.branches.split(",") if b.strip()),
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        eval_every=args.eval_every, val_data=args.val_data, val_samples=args.val_samples, seed=args.seed,
        gradient_checkpointing=not args.no_grad_checkpointing,
        autocast=not args.no_autocast, export_dir=_export_dir(args), name=args.name, lock_file=lock,
        run_id=args.run_id, log_every=args.log_every)


def _export_dir(args: argparse.Namespace) -> str | None:
    if args.no_export:
        return None
    return args.export_dir or str(paths_from_env().checkpoints)


def _train(args: argparse.Namespace) -> int:
    import logging
    import sys

    from ..errors import InputError
    from ..training.trainer import train

    if not args.resume and not args.data:
        raise InputError("--data is required (or --resume to continue the run in --out)")
    if args.no_progress or not sys.stderr.isatty():
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        args.no_progress = True
    if not distributed_env().main_process:  # data-parallel workers: only process 0 reports
        logging.getLogger("steerseg.train").setLevel(logging.WARNING)
    result = train(config_from_args(args), resume=args.resume, progress=not args.no_progress,
                   handle_signals=True)
    if not result.main_process:
        return 0
    if result.state == "finished":
        where = result.exported or result.soft_prompts
        print(f"finished {result.step} steps: soft prompts in {where}")
        if result.val_init and result.val_final:
            print(f"held-out rollout–mask correlation {result.val_init['corr']:.3f} → {result.val_final['corr']:.3f}")
    else:
        print(f"stopped at step {result.step}; continue with: python -m steerseg_core train --out {args.out} --resume")
    if result.skipped:
        print("skipped samples: " + ", ".join(f"{k}: {v}" for k, v in result.skipped.items()))
    return 0
