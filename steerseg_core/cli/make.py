"""`make-tiny-models` and `make-synthetic`: write the test and demo fixtures from a shell.

    python -m steerseg_core make-tiny-models DIR        →  DIR/qwen2_5_vl, DIR/qwen2_vl, DIR/sam2
    python -m steerseg_core make-synthetic DIR --videos 24   # moving shapes, Ref-YouTube-VOS layout
"""

from __future__ import annotations

import argparse


def _tiny(args: argparse.Namespace) -> int:
    from ..files import TINY_LABEL
    from ..testing.tiny_models import make_tiny_models

    out = make_tiny_models(args.dir, with_sam2=not args.no_sam2, all_families=args.all_families)
    for sub in sorted(p for p in out.iterdir() if p.is_dir()):
        print(f"wrote {sub}")
    print(f"note: {TINY_LABEL}")
    return 0


def _synthetic(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..testing.synthetic import make_synthetic_dataset

    try:
        parts = [int(x) for x in str(args.objects).split(",")]
    except ValueError:
        raise InputError(f"--objects must be N or MIN,MAX, got {args.objects!r}") from None
    objects = parts[0] if len(parts) == 1 else (parts[0], parts[1])
    out = make_synthetic_dataset(args.dir, args.videos, args.frames, args.size, objects, args.seed)
    print(f"wrote {args.videos} synthetic clips to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-tiny-models", help="write tiny random-weight models for tests and demos")
    p.add_argument("dir", help="output folder (gets qwen2_5_vl/, qwen2_vl/, sam2/)")
    p.add_argument("--no-sam2", action="store_true", help="skip the tiny SAM2 model")
    p.add_argument("--all-families", action="store_true",
                   help="also write tiny InternVL3 (internvl/) and LLaVA-OneVision (llava_onevision/) models")
    p.set_defaults(func=_tiny)

    s = sub.add_parser("make-synthetic", help="write a synthetic moving-shapes dataset (Ref-YouTube-VOS layout)")
    s.add_argument("dir")
    s.add_argument("--videos", type=int, default=24)
    s.add_argument("--frames", type=int, default=16)
    s.add_argument("--size", type=int, default=112)
    s.add_argument("--objects", default="1,2", help="shapes per clip: N or MIN,MAX")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_synthetic)
