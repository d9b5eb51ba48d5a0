"""Attribute attention (the paper's Fig. 4b): how much of the query token's rollout row goes to
each CoT attribute, and how the row splits between visual tokens, text and soft prompts.

The rollout row of the answer token already covers every input token; the maps keep only its
visual part. Here the part over the attribute tokens of the query prompt is kept too: an
attribute's share is the row's mass on that attribute's tokens as a fraction of its mass on all
attribute tokens (so the shares sum to 1); the frame branch is averaged over keyframes, the video
branch reported separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

ATTRIBUTES_MARKER = "Distinguishing attributes of the target: "


@dataclass(frozen=True)
class RowCapture:
    """One batch of rollout rows over every token (B, N) with the token ids and layout they index."""

    rows: torch.Tensor
    input_ids: torch.Tensor
    visual_positions: torch.Tensor
    soft_start: int | None
    soft_count: int


def attribute_token_positions(tokenizer, input_ids: Sequence[int], attributes: Sequence[str]) -> list[list[int]]:
    """Per attribute, the positions of the tokens that spell it inside the prompt's attributes line
    (searched in order, case-insensitively; an attribute not found there gets no positions)."""
    pieces = [tokenizer.decode([int(i)]) for i in input_ids]
    starts = np.cumsum([0] + [len(p) for p in pieces])
    text = "".join(pieces).lower()
    at = text.rfind(ATTRIBUTES_MARKER.lower())
    if at < 0:
        return [[] for _ in attributes]
    cursor = at + len(ATTRIBUTES_MARKER)
    end = text.find("\n", cursor)
    end = len(text) if end < 0 else end
    out: list[list[int]] = []
    for attr in attributes:
        s = text.find(attr.lower(), cursor, end)
        if s < 0 or not attr:
            out.append([])
            continue
        e = s + len(attr)
        cursor = e
        out.append([k for k in range(len(pieces)) if starts[k] < e and starts[k + 1] > s])
    return out


def _row_split(row: np.ndarray, visual: np.ndarray, soft: range) -> dict[str, float]:
    total = float(row.sum())
    vis = float(row[visual].sum())
    sp = float(row[list(soft)].sum()) if len(soft) else 0.0
    return {"visual": vis / total, "soft_prompts": sp / total, "text": (total - vis - sp) / total}


def summarise(tokenizer, captures: Sequence[RowCapture], attributes: Sequence[str]) -> dict:
    """Attribute shares (mean over the captured rows) and the visual / text / soft-prompt split."""
    shares, splits = [], []
    for cap in captures:
        visual = cap.visual_positions.cpu().numpy()
        soft = range(cap.soft_start, cap.soft_start + cap.soft_count) if cap.soft_start is not None else range(0)
        for b in range(cap.rows.shape[0]):
            row = cap.rows[b].double().cpu().numpy()
            splits.append(_row_split(row, visual, soft))
            if attributes:
                pos = attribute_token_positions(tokenizer, cap.input_ids[b].tolist(), attributes)
                mass = np.array([row[p].sum() if p else 0.0 for p in pos])
                if mass.sum() > 0:
                    shares.append(mass / mass.sum())
    split = {k: float(np.mean([s[k] for s in splits])) for k in ("visual", "text", "soft_prompts")} if splits else {}
    share = np.mean(shares, axis=0) if shares else None
    return {"attributes": [{"attribute": a, "share": float(share[i]) if share is not None else None}
                           for i, a in enumerate(attributes)], "row_split": split}
