"""COCO RLE for the benchmark readers: the codec lives in ``steerseg_core.rle``."""

from ..rle import counts_from_string, counts_to_string, rle_decode, rle_encode

__all__ = ["counts_from_string", "counts_to_string", "rle_decode", "rle_encode"]
