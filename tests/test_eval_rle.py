"""COCO RLE: the compressed string format MeViS / ReVOS store their masks in."""

from __future__ import annotations

import numpy as np
import pytest

from steerseg_core.errors import InputError
from steerseg_core.eval.rle import counts_from_string, counts_to_string, rle_decode, rle_encode


def test_counts_string_by_hand():
    # 5, 10, 7 are single 5-bit groups (+48); the 4th count is stored as 100 - 10 = 90 =
    # 26 + 2·32 → groups 26|0x20 = 58 → 'j', then 2 → '2'.
    assert counts_to_string([5, 10, 7, 100]) == "5:7j2"
    assert counts_from_string("5:7j2") == [5, 10, 7, 100]
    # A negative difference (4th count smaller than the 2nd) uses the sign bit of the last group.
    assert counts_from_string(counts_to_string([3, 40, 2, 1, 9])) == [3, 40, 2, 1, 9]


def test_decode_string_written_by_pycocotools():
    # pycocotools.mask.encode of this 20x30 mask (two 7x9 rectangles and a full column).
    expected = np.zeros((20, 30), dtype=bool)
    expected[2:9, 3:12] = True
    expected[12:19, 20:29] = True
    expected[:, 15] = True
    rle = {"size": [20, 30], "counts": "n17=000000000000000j1=e0CaM0000000000000008"}
    got = rle_decode(rle)
    assert got.shape == (20, 30) and got.sum() == 146
    assert (got == expected).all()
    assert rle_encode(expected) == rle


def test_roundtrip_and_list_counts():
    rng = np.random.default_rng(1)
    for _ in range(30):
        h, w = rng.integers(1, 40, 2)
        m = rng.random((h, w)) > rng.random()
        assert (rle_decode(rle_encode(m)) == m).all()
    # Uncompressed counts (a list), column-major, starting with zeros.
    m = rle_decode({"size": [2, 3], "counts": [1, 2, 3]})
    assert m.tolist() == [[False, True, False], [True, False, False]]


def test_bad_rle_is_a_clear_error():
    with pytest.raises(InputError, match="cover"):
        rle_decode({"size": [4, 4], "counts": [3, 2]})
    with pytest.raises(InputError, match="not a COCO RLE"):
        rle_decode({"counts": "abc"})
