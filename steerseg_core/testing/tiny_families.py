"""Tiny random-weight InternVL3 and LLaVA-OneVision folders, for tests of the two other backbones.

Same idea as ``tiny_models`` (config + safetensors + processor + tokenizer written offline, loadable
by ``load_adapter`` in place of a hub id), with each family's own pieces: InternVL's named image
tokens (``<img>``, ``</img>``, ``<IMG_CONTEXT>``, ``<video>``) on the tokenizer and a pixel-shuffled
InternViT; LLaVA-OneVision's ``<image>`` / ``<video>`` tokens, a SigLIP tower whose image size is not
a multiple of its patch (like the real 384 px / 14 px → 27 patches) and a short any-res pinpoint
list. Sizes are chosen so a forward takes milliseconds on a CPU; outputs are meaningless.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..files import TINY_LABEL, TINY_MARKER
from .tiny_tokenizer import QWEN_SPECIAL_TOKENS, train_bpe

INTERNVL_NAMED_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
LLAVA_OV_NAMED_TOKENS = {"image_token": "<image>", "video_token": "<video>"}

# Compact templates with the structure of the real ones: InternVL writes one <IMG_CONTEXT> (image) or
# <video> placeholder per item, which the processor expands; LLaVA-OneVision writes <image>/<video>
# first, then the text on a new line.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA_OV_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'video' %}<video>{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ '\\n' + c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_family_tokenizer(out_dir: Path, named: dict[str, str], chat_template: str):
    """A small byte-level BPE (deterministic) as a Qwen2Tokenizer with the Qwen chat tokens and the
    family's named special tokens (readable as ``tok.<name>`` / ``tok.<name>_id`` after reloading)."""
    from transformers import Qwen2Tokenizer

    vocab, merges = train_bpe()
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, extra_special_tokens=dict(named))
    extra = [t for t in QWEN_SPECIAL_TOKENS[1:] if t not in named.values()] + list(named.values())
    tok.add_special_tokens({"additional_special_tokens": extra}, replace_extra_special_tokens=False)
    tok.chat_template = chat_template
    tok.save_pretrained(out_dir)
    return tok


def _text_config(tok) -> dict:
    return dict(
        model_type="qwen2", vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), tie_word_embeddings=False,
    )


def _finish(out_dir: Path, processor, model) -> Path:
    processor.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    (out_dir / TINY_MARKER).write_text(TINY_LABEL + "\n")
    return out_dir


def make_tiny_internvl(out_dir: Path | str, seed: int = 0, image_size: int = 112) -> Path:
    """Write a tiny random InternVL3 (``InternVLForConditionalGeneration``): 112-px tiles, 14-px patches,
    pixel shuffle 0.5 → a 4×4 token grid per tile (the real model: 448 px → 16×16)."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_family_tokenizer(out_dir, INTERNVL_NAMED_TOKENS, INTERNVL_CHAT_TEMPLATE)
    patch, ratio = 14, 0.5
    seq_len = int((image_size // patch * ratio) ** 2)
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, max_patches=4),
        tokenizer=tok, video_processor=InternVLVideoProcessor(size=size), image_seq_length=seq_len,
        chat_template=INTERNVL_CHAT_TEMPLATE)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  image_size=image_size, patch_size=patch, layer_scale_init_value=0.1)
    config = InternVLConfig(vision_config=vision, text_config=_text_config(tok),
                            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=seq_len, downsample_ratio=ratio, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return _finish(out_dir, processor, InternVLForConditionalGeneration(config).eval())


def make_tiny_llava_ov(out_dir: Path | str, seed: int = 0, image_size: int = 100) -> Path:
    """Write a tiny random LLaVA-OneVision: SigLIP at 100 px / 14-px patches → a 7×7 base grid (2 px
    of the resized frame fall outside it, as 6 px do for the real 384 px / 27×27), video frames
    pooled to 4×4, any-res pinpoints up to 2×2 tiles."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_family_tokenizer(out_dir, LLAVA_OV_NAMED_TOKENS, LLAVA_OV_CHAT_TEMPLATE)
    patch = 14
    s = image_size
    pinpoints = [[s, s], [s, 2 * s], [2 * s, s], [2 * s, 2 * s]]
    size = {"height": s, "width": s}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        tokenizer=tok, video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(s // patch) ** 2, vision_feature_select_strategy="full",
        chat_template=LLAVA_OV_CHAT_TEMPLATE)
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=s, patch_size=patch, vision_use_head=False)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=_text_config(tok),
                                  image_token_index=tok.convert_tokens_to_ids("<image>"),
                                  video_token_index=tok.convert_tokens_to_ids("<video>"),
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  image_grid_pinpoints=pinpoints, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return _finish(out_dir, processor, LlavaOnevisionForConditionalGeneration(config).eval())
