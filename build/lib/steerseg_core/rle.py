"""COCO run-length encoding, our own codec: exports write it (``masks_coco_rle.json``) and the
MeViS / ReVOS ``mask_dict.json`` ground truth reads with it, without pycocotools.

An RLE is ``{"size": [h, w], "counts": ...}``: alternating run lengths of 0s and 1s (starting with
0s) over the mask in column-major order. ``counts`` is either a list of ints or the compressed
string form: each count (from the fourth on, as the difference to the count two places back) in
5-bit groups, low bits first, each group + 48 as a character, bit 0x20 meaning "more groups
follow" and bit 0x10 of the last group the sign.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError


def counts_from_string(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    n = len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise InputError("truncated RLE string")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise InputError(f"invalid character {s[p]!r} in RLE counts")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def counts_to_string(counts: list[int]) -> str:
    out: list[str] = []
    for i, cnt in enumerate(counts):
        x = int(cnt) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_decode(rle: dict) -> np.ndarray:
    """(h, w) bool mask of a COCO RLE dict (compressed string or list counts)."""
    try:
        h, w = (int(v) for v in rle["size"])
        raw = rle["counts"]
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"not a COCO RLE: {str(rle)[:80]}") from err
    if isinstance(raw, bytes):
        raw = raw.decode("ascii")
    counts = counts_from_string(raw) if isinstance(raw, str) else [int(c) for c in raw]
    if sum(counts) != h * w or any(c < 0 for c in counts):
        raise InputError(f"RLE counts cover {sum(counts)} pixels, the mask has {h * w}")
    values = np.arange(len(counts), dtype=np.int64) % 2
    flat = np.repeat(values.astype(bool), counts)
    return flat.reshape(w, h).T.copy()


def rle_encode(mask: np.ndarray) -> dict:
    """COCO RLE (compressed string counts) of a (h, w) mask."""
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    h, w = m.shape
    flat = m.T.reshape(-1)
    if flat.size == 0:
        return {"size": [h, w], "counts": counts_to_string([0])}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [h, w], "counts": counts_to_string(runs)}
