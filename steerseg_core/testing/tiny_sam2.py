"""A tiny random-weight SAM2 folder for tests and demos, loadable by ``build_sam2(folder)``.

The configuration is sam2's own packaged one, shrunk (or kept, for realistic timings) and
written beside random weights, so the real loading and tracking code runs on a CPU in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..files import TINY_LABEL, TINY_MARKER
from ..segment.build_sam import ALIASES, SIZES, packaged_config


def make_tiny_sam2(out_dir: Path, image_size: int = 256, *, arch: str = "compact",
                   seed: int = 0) -> Path:
    """Write a random-weight SAM2 folder (``config.yaml`` + ``model.safetensors``, plus
    ``tiny_sam2.json`` and the STEERSEG_TINY.txt label) that ``build_sam2(str(out_dir))`` loads.
    Deterministic: the same arguments write the same bytes.

    ``arch="compact"`` (default) is a shrunken hiera-t layout (narrower trunk, 64-wide neck and
    memory) that runs fast on a CPU for tests; "tiny"/"small"/"base+"/"large" keep the released
    architecture (random weights) for realistic timings. ``image_size`` must be a multiple of 32.
    The object-score head is biased so random masks are non-empty (objects "present").
    Outputs are meaningless: this exists to exercise the real loading and tracking code.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    base = ALIASES.get(arch, arch)
    packaged = SIZES["tiny" if base == "compact" else base][2]
    cfg = OmegaConf.to_container(OmegaConf.load(packaged_config(packaged)), resolve=True)
    model_cfg = cfg["model"]
    model_cfg["image_size"] = int(image_size)
    feat = image_size // 16
    if base == "compact":
        _shrink(model_cfg)
    for att in ("self_attention", "cross_attention"):
        model_cfg["memory_attention"]["layer"][att]["feat_sizes"] = [feat, feat]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = instantiate(OmegaConf.create(model_cfg), _recursive_=True)
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    head_bias = [k for k in sd if k.startswith("sam_mask_decoder.pred_obj_score_head") and k.endswith("bias")]
    if head_bias:
        sd[sorted(head_bias)[-1]].fill_(4.0)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"model": model_cfg})))
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})  # one key: same bytes
    (out / "tiny_sam2.json").write_text(json.dumps({"arch": arch, "image_size": image_size, "seed": seed}) + "\n")
    (out / TINY_MARKER).write_text(TINY_LABEL + "\n")
    return out


def _shrink(m: dict) -> None:
    """hiera-t → a much smaller network with the same structure (every module kept)."""
    trunk, neck = m["image_encoder"]["trunk"], m["image_encoder"]["neck"]
    trunk.update(embed_dim=32, num_heads=1, stages=[1, 1, 2, 1], global_att_blocks=[3])
    neck.update(d_model=64, backbone_channel_list=[256, 128, 64, 32])
    neck["position_encoding"]["num_pos_feats"] = 64
    att = m["memory_attention"]
    att.update(d_model=64, num_layers=2)
    att["layer"].update(d_model=64, dim_feedforward=128)
    att["layer"]["self_attention"]["embedding_dim"] = 64
    att["layer"]["cross_attention"].update(embedding_dim=64, kv_in_dim=32)
    enc = m["memory_encoder"]
    enc.update(out_dim=32, in_dim=64)
    enc["mask_downsampler"]["embed_dim"] = 64
    enc["position_encoding"]["num_pos_feats"] = 32
    enc["fuser"].update(num_layers=1)
    enc["fuser"]["layer"]["dim"] = 64
