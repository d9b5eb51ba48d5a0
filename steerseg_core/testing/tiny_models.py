"""Tiny random-weight models that run the whole pipeline offline on a CPU.

Real weights are gigabytes and live on the hub; these folders have the same layout
(``config.json``, safetensors weights, tokenizer and processor files), so every loader, every
``--backbone`` / ``--sam2`` option and the app accept them in place of a hub id. Their outputs are
meaningless (random weights) — they exist for tests, CI and trying the app without a GPU.

    python -m steerseg_core make-tiny-models DIR   →   DIR/qwen2_5_vl, DIR/qwen2_vl, DIR/sam2
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..files import TINY_LABEL, TINY_MARKER
from .tiny_tokenizer import QWEN_SPECIAL_TOKENS, train_bpe

# A compact Qwen-style chat template (the real models ship their own; ours renders the same
# structure: role headers, vision placeholders, generation prompt).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)



def build_qwen_tokenizer(out_dir: Path):
    """Train a small byte-level BPE (deterministic) and wrap it as a Qwen2Tokenizer."""
    from transformers import Qwen2Tokenizer

    vocab, merges = train_bpe()
    qtok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    qtok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    qtok.chat_template = QWEN_CHAT_TEMPLATE
    qtok.save_pretrained(out_dir)
    return qtok


def _qwen_config(kind: str, tok) -> object:
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    text = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    ids = dict(
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    if kind == "qwen2_5_vl":
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1], tokens_per_second=2)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)


def make_tiny_qwen(out_dir: Path, kind: str = "qwen2_5_vl", seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (or Qwen2-VL) with tokenizer + processor to ``out_dir``."""
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_qwen_tokenizer(out_dir)
    pixels = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)
    image_proc = Qwen2VLImageProcessor(**pixels)
    video_proc = Qwen2VLVideoProcessor(**pixels)
    proc_cls = Qwen2_5_VLProcessor if kind == "qwen2_5_vl" else Qwen2VLProcessor
    processor = proc_cls(image_processor=image_proc, tokenizer=tok, video_processor=video_proc,
                         chat_template=QWEN_CHAT_TEMPLATE)
    processor.save_pretrained(out_dir)
    torch.manual_seed(seed)
    model_cls = Qwen2_5_VLForConditionalGeneration if kind == "qwen2_5_vl" else Qwen2VLForConditionalGeneration
    model = model_cls(_qwen_config(kind, tok)).eval()
    model.save_pretrained(out_dir)
    (out_dir / TINY_MARKER).write_text(TINY_LABEL + "\n")
    return out_dir


def make_tiny_models(out_dir: Path | str, with_sam2: bool = True, all_families: bool = False) -> Path:
    """Write tiny models the tools accept: qwen2_5_vl/, qwen2_vl/, (with_sam2) sam2/ and, with
    ``all_families``, internvl/ and llava_onevision/."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    make_tiny_qwen(out / "qwen2_5_vl", "qwen2_5_vl")
    make_tiny_qwen(out / "qwen2_vl", "qwen2_vl")
    if all_families:
        from .tiny_families import make_tiny_internvl, make_tiny_llava_ov

        make_tiny_internvl(out / "internvl")
        make_tiny_llava_ov(out / "llava_onevision")
    if with_sam2:
        from .tiny_sam2 import make_tiny_sam2

        make_tiny_sam2(out / "sam2")
    return out
