"""Grounding — the paper's §3.1–3.2: from (clip, expression) to the attention maps S_frm and S_vid.

``prompts`` (the CoT and query prompts, the CoT parser), ``lvlm/`` (one adapter per backbone
family), ``rollout`` (attention capture and the rollout of the query row, with the fused CUDA
kernels in ``rollout_triton``), ``soft_prompts`` (the learnable prompt vectors and their
checkpoints) and ``grounder`` (the two-step run that ties them together). Import the modules
directly; this package face stays light so that importing a prompt never loads torch.
"""
