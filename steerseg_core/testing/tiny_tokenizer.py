"""The small byte-level BPE and the Qwen special tokens that every tiny test backbone shares.

Apart from ``tiny_models`` and ``tiny_families`` so both use it without importing each other.
"""

from __future__ import annotations

import json

from ..grounding import prompts

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def _tokenizer_corpus() -> list[str]:
    words = (
        "the a an of in on at to with and or left right top bottom small large big red green blue "
        "white black yellow person man woman dog cat car bike bird swan horse cow camel kite boat "
        "moving running walking parked standing sitting front back near far color size position "
        "shape motion object target expression which best"
    )
    return [prompts.COT_TEMPLATE, prompts.QUERY_TEMPLATE, prompts.SEED_PROMPT_FRAME,
            prompts.SEED_PROMPT_VIDEO, words] * 4


def train_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small byte-level BPE (vocab 700) trained on the prompts: deterministic vocab and merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    model_json = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]
    return model_json["vocab"], merges
