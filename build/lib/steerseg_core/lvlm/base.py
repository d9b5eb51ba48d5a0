"""The small protocol every LVLM backbone implements, and what all of them share.

Grounding needs six things from a backbone: build inputs for a set of frames (one image each, or
one joint video), generate text, find the visual tokens and their (t, h, w) grid, splice soft-prompt
placeholders into the input, replace their embeddings with learnable vectors, and name the
language model's attention modules for the rollout capture. ``HFAdapter`` implements the parts
that are the same for every transformers model; a subclass per family supplies the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import rollout
from ..types import TokenGeometry


@dataclass
class PreparedInputs:
    """Model inputs for a batch of B equal-length sequences plus where things are in them."""

    model_inputs: dict[str, torch.Tensor]
    visual_positions: torch.Tensor  # (Nv,) positions of visual tokens (same for every batch row)
    visual_grid: tuple[int, int, int]  # (t, h, w) of the visual tokens, row-major
    geometry: TokenGeometry
    soft_start: int | None = None  # first soft-prompt position, if placeholders were spliced in
    soft_count: int = 0

    @property
    def batch_size(self) -> int:
        return int(self.model_inputs["input_ids"].shape[0])

    @property
    def length(self) -> int:
        return int(self.model_inputs["input_ids"].shape[1])

    def with_appended_tokens(self, tokens: torch.Tensor) -> PreparedInputs:
        """Inputs for prompt + response tokens (B, k): for the forward pass that consumes q."""
        mi = dict(self.model_inputs)
        k = tokens.shape[1]
        mi["input_ids"] = torch.cat([mi["input_ids"], tokens.to(mi["input_ids"].device)], dim=1)
        for key in ("attention_mask", "mm_token_type_ids", "token_type_ids"):
            if key in mi:
                fill = 1 if key == "attention_mask" else 0
                pad = torch.full((mi[key].shape[0], k), fill, dtype=mi[key].dtype, device=mi[key].device)
                mi[key] = torch.cat([mi[key], pad], dim=1)
        return PreparedInputs(mi, self.visual_positions, self.visual_grid, self.geometry,
                              self.soft_start, self.soft_count)


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype != "auto":
        return {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
                "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}[dtype]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class HFAdapter:
    """Shared implementation over a transformers model + processor. Subclasses implement
    ``_build`` (frames → processor inputs), ``_visual_token_id`` and ``_grid``."""

    family = "base"

    def __init__(self, model: nn.Module, processor, name: str) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.name = name
        self._soft: tuple[int, torch.Tensor] | None = None
        self.model.requires_grad_(False)
        self.model.eval()
        self._hook = self.input_embeddings().register_forward_hook(self._embed_hook)
        rollout.register_attention()
        self._use_capture_attention()

    # -- model facts -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.input_embeddings().weight.dtype

    @property
    def text_config(self):
        cfg = self.model.config
        return getattr(cfg, "text_config", None) or getattr(cfg, "llm_config", None) or cfg

    @property
    def num_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def fingerprint(self) -> dict[str, int | str]:
        """What a soft-prompt checkpoint must match to be usable with this backbone."""
        cfg = self.text_config
        return {"model_type": str(self.model.config.model_type), "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "vocab_size": int(cfg.vocab_size)}

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def decoder_layers(self) -> Sequence[nn.Module]:
        lm = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.language_model
        layers = getattr(lm, "layers", None)
        if layers is None:
            raise RuntimeError(f"cannot find decoder layers of {type(self.model).__name__}")
        return layers

    def attention_modules(self, lo: int, hi: int) -> list[nn.Module]:
        layers = self.decoder_layers()
        return [layers[i].self_attn for i in range(lo, hi + 1)]

    def _use_capture_attention(self) -> None:
        """Route the language model's attention through the capture wrapper (sdpa inside)."""
        cfg = self.text_config
        cfg._attn_implementation = rollout.ATTN_IMPLEMENTATION
        for layer in self.decoder_layers():
            attn_cfg = getattr(layer.self_attn, "config", None)
            if attn_cfg is not None:
                attn_cfg._attn_implementation = rollout.ATTN_IMPLEMENTATION

    # -- soft prompts --------------------------------------------------------------------------
    @property
    def placeholder_id(self) -> int:
        tok = self.tokenizer
        pid = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return int(pid)

    def token_embeddings(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("seed prompt has no tokens")
        with torch.no_grad():
            return self.input_embeddings()(torch.tensor(ids, device=self.device)).float().cpu()

    def _soft_insert_position(self, input_ids: torch.Tensor) -> int:
        """Default: right before the first vision token block (start of the user content)."""
        start_id = self._vision_start_id()
        hits = (input_ids[0] == start_id).nonzero()
        if hits.numel() == 0:
            raise RuntimeError("no vision block in the prompt to place soft prompts before")
        return int(hits[0])

    def splice_placeholders(self, prepared: PreparedInputs, count: int) -> PreparedInputs:
        """Insert ``count`` placeholder tokens for soft prompts; shifts visual positions."""
        if count <= 0:
            return prepared
        mi = dict(prepared.model_inputs)
        ids = mi["input_ids"]
        at = self._soft_insert_position(ids)
        for key, tensor in list(mi.items()):
            if tensor.dim() == 2 and tensor.shape == ids.shape:
                fill = self.placeholder_id if key == "input_ids" else (1 if key == "attention_mask" else 0)
                ins = torch.full((tensor.shape[0], count), fill, dtype=tensor.dtype, device=tensor.device)
                mi[key] = torch.cat([tensor[:, :at], ins, tensor[:, at:]], dim=1)
        pos = prepared.visual_positions
        pos = torch.where(pos >= at, pos + count, pos)
        return PreparedInputs(mi, pos, prepared.visual_grid, prepared.geometry, at, count)

    @contextmanager
    def soft_prompts_active(self, prepared: PreparedInputs, vectors: torch.Tensor | None) -> Iterator[None]:
        """While active, the embedding output at the placeholder positions is ``vectors``."""
        if vectors is None or prepared.soft_start is None:
            yield
            return
        if vectors.shape[0] != prepared.soft_count:
            raise ValueError(f"{vectors.shape[0]} soft prompts for {prepared.soft_count} placeholders")
        prev = self._soft
        self._soft = (prepared.soft_start, vectors)
        try:
            yield
        finally:
            self._soft = prev

    def _embed_hook(self, module, inputs, output):
        if self._soft is None:
            return output
        start, vectors = self._soft
        n = vectors.shape[0]
        if output.shape[1] < start + n:
            return output  # a decoding step with a KV cache: placeholders are in the cache already
        ids = inputs[0]
        if not bool((ids[:, start:start + n] == self.placeholder_id).all()):
            raise RuntimeError("soft-prompt placeholders are not where they were spliced in")
        vec = vectors.to(device=output.device, dtype=output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output[:, :start], vec, output[:, start + n:]], dim=1)

    # -- generation ----------------------------------------------------------------------------
    def generate(self, prepared: PreparedInputs, max_new_tokens: int,
                 soft: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str]]:
        """Greedy decoding. Returns the new token ids (B, k) and their decoded texts."""
        with torch.inference_mode(), self.soft_prompts_active(prepared, soft):
            out = self.model.generate(**prepared.model_inputs, max_new_tokens=max_new_tokens,
                                      do_sample=False, num_beams=1, pad_token_id=self.placeholder_id,
                                      suppress_tokens=self.structural_token_ids() or None)
        new = out[:, prepared.length:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return new, texts

    def forward(self, prepared: PreparedInputs, soft: torch.Tensor | None = None):
        with self.soft_prompts_active(prepared, soft):
            return self.model(**prepared.model_inputs, use_cache=False, logits_to_keep=1)

    def structural_token_ids(self) -> list[int]:
        """Token ids a response must never contain (vision placeholders and markers): a response
        token equal to one would corrupt the forward pass over prompt + q."""
        cfg = self.model.config
        names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
                 "image_token_index", "video_token_index")
        return sorted({int(getattr(cfg, n)) for n in names if getattr(cfg, n, None) is not None})

    def _chat(self, kind: str, text: str) -> str:
        """The user turn with one visual placeholder (``kind`` 'image' or 'video') and the text."""
        messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def _to_device(self, batch) -> dict[str, torch.Tensor]:
        """Processor output → tensors on the model's device, floats in the model's dtype."""
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device)
                out[k] = v.to(self.dtype) if v.is_floating_point() else v
        return out

    # -- family specifics ----------------------------------------------------------------------
    def build_frames(self, frames: np.ndarray, text: str, max_tokens: int) -> PreparedInputs:
        """One sequence per frame (B = T), each frame as an image at the frame-branch grid."""
        raise NotImplementedError

    def build_video(self, frames: np.ndarray, text: str, max_tokens: int, fps: float) -> PreparedInputs:
        """One sequence with all frames as one video, at half the frame-branch side length."""
        raise NotImplementedError

    def _vision_start_id(self) -> int:
        raise NotImplementedError
