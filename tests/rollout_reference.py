"""The two ways of computing a rollout row that the rollout tests compare: our capture (sdpa +
the registered wrapper) and the textbook one (eager attention with ``output_attentions``, then
explicit matrix products)."""

from __future__ import annotations

import torch

from steerseg_core.grounding import rollout


def set_text_attention(adapter, name: str) -> None:
    """Switch the language model's attention implementation (config and every layer)."""
    adapter.text_config._attn_implementation = name
    for layer in adapter.decoder_layers():
        layer.self_attn.config._attn_implementation = name


def captured_row(adapter, prepared, soft, lo: int, hi: int, chunk: int | None = None,
                 fused: bool = True) -> torch.Tensor:
    """Our rollout row of layers lo..hi from one capturing forward."""
    with torch.no_grad(), rollout.capturing(adapter.attention_modules(lo, hi), chunk, fused) as cap:
        adapter.forward(prepared, soft)
    return rollout.rollout_row(cap.ordered()).row


def dense_row(adapter, prepared, soft, lo: int, hi: int) -> torch.Tensor:
    """Full eager attentions (B, H, N, N) per layer, then explicit matrix products."""
    set_text_attention(adapter, "eager")
    try:
        with torch.no_grad(), adapter.soft_prompts_active(prepared, soft):
            out = adapter.model(**prepared.model_inputs, use_cache=False, output_attentions=True)
    finally:
        set_text_attention(adapter, rollout.ATTN_IMPLEMENTATION)
    return rollout.dense_rollout_row(out.attentions[lo:hi + 1])
