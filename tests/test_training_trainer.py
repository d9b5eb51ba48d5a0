"""The trainer: it learns on synthetic data, resumes bit for bit, keeps the LVLM frozen, skips bad
data, stops on NaN with the last good checkpoint, and writes checkpoints atomically."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from steerseg_core import cli
from steerseg_core.errors import CheckpointError, InputError
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.soft_prompts import SoftPrompts, list_checkpoints
from steerseg_core.testing.synthetic import make_synthetic_dataset
from steerseg_core.training import checkpoint as ckpt
from steerseg_core.training.config import GROUNDING_FIELDS
from steerseg_core.training.objective import BranchResult, Objective
from steerseg_core.training.runs import read_metrics, read_status
from steerseg_core.training.trainer import TrainConfig, TrainingDiverged, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def backbone(tiny_models) -> Path:
    return tiny_models / "qwen2_5_vl"


@pytest.fixture(scope="module")
def adapter(backbone):
    return load_adapter(str(backbone))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn"), videos=6, frames=6, size=56, objects=(1, 2), seed=1)


def _cfg(data: Path, out: Path, backbone: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), backbone=str(backbone), out=str(out), steps=6, lr=2e-2, warmup_steps=2,
                batch_size=2, n_prompts=4, input_frames=4, t_frame=4, t_video=4, frame_max_tokens=8,
                frame_batch_size=4, checkpoint_every=3, eval_every=0, val_samples=1, gradient_checkpointing=False)
    base.update(kw)
    return TrainConfig.from_dict(base)  # the flat layout older run folders stored


def _train_lines(run: Path) -> list[dict]:
    drop = {"time", "step_time"}
    return [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(run) if r["split"] == "train"]


# -- evidence that it learns ----------------------------------------------------------------

@pytest.fixture(scope="module")
def steerable_backbone(backbone, tmp_path_factory) -> Path:
    """The tiny model with its language model's query/key projections scaled ×8.

    At the default init (std 0.02) every attention logit of the tiny model is ~0.01: attention is
    uniform whatever the input, so nothing (soft prompts included) can steer it — its rollout map
    is fixed by token positions (checked below). Scaling W_q and W_k gives a random model with
    realistically peaked attention, still random and still tiny.
    """
    from transformers import AutoModelForImageTextToText

    out = tmp_path_factory.mktemp("steerable") / "qwen2_5_vl"
    shutil.copytree(backbone, out)
    model = AutoModelForImageTextToText.from_pretrained(str(backbone))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "language_model" in name and name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(8.0)
    model.save_pretrained(str(out))
    return out


def test_short_run_learns_to_steer_rollout_onto_the_mask(steerable_backbone, tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", videos=24, frames=4, size=112, objects=1, seed=0)
    cfg = _cfg(data, tmp_path / "run", steerable_backbone, steps=40, lr=0.1, batch_size=1, n_prompts=8,
               frame_max_tokens=36, checkpoint_every=0, val_samples=8, weight_decay=0.0)
    t0 = time.perf_counter()
    result = train(cfg)
    elapsed = time.perf_counter() - t0
    init, final = result.val_init, result.val_final
    losses = [r["loss"] for r in _train_lines(Path(cfg.out))]
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(f"\nlearning test ({elapsed:.1f} s, 40 steps): held-out rollout–mask correlation "
          f"{init['corr']:.3f} → {final['corr']:.3f} (frame {init['corr_frame']:.3f} → {final['corr_frame']:.3f}, "
          f"video {init['corr_video']:.3f} → {final['corr_video']:.3f}); held-out loss {init['loss']:.3f} → "
          f"{final['loss']:.3f}; training loss (mean of 10 steps) {first:.3f} → {last:.3f}")
    assert result.state == "finished" and result.step == 40
    assert final["corr"] > init["corr"] + 0.15
    assert final["corr_frame"] > init["corr_frame"] and final["corr_video"] > init["corr_video"]
    assert final["loss"] < init["loss"] - 0.2
    assert last < first
    assert (Path(cfg.out) / "loss.png").stat().st_size > 0
    assert (Path(cfg.out) / "val_maps_init.png").exists() and (Path(cfg.out) / "val_maps_latest.png").exists()


def test_default_tiny_model_attention_cannot_be_steered(adapter, synthetic):
    """Why the learning test rescales the tiny model: with its default init, two unrelated sets of
    soft prompts give the same map (correlation ≈ 1)."""
    from steerseg_core.config import GroundingConfig
    from steerseg_core.grounding.grounder import Grounder
    from steerseg_core.training.data import load_sample, open_dataset

    sample = load_sample(open_dataset(synthetic).records[0], 2)
    g = Grounder(adapter, GroundingConfig(backbone="tiny", frame_max_tokens=16, query_max_new_tokens=1))
    prepared = adapter.build_frames(sample.frames, "Expression: the red circle", 16)
    tok = torch.tensor([[5], [5]])
    with torch.no_grad():
        a = g.branch_rollout(prepared, torch.randn(8, adapter.hidden_size), tokens=tok).maps.flatten()
        b = g.branch_rollout(prepared, torch.randn(8, adapter.hidden_size) * 3, tokens=tok).maps.flatten()
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.99


# -- resumable, frozen ----------------------------------------------------------------------

def test_resumed_run_matches_uninterrupted_and_lvlm_stays_frozen(adapter, backbone, synthetic, tmp_path, monkeypatch):
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    full = train(_cfg(synthetic, tmp_path / "full", backbone), adapter=adapter)
    assert full.state == "finished"
    after = adapter.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the LVLM changed"
    assert not any(p.requires_grad for p in adapter.model.parameters())
    sp_full = SoftPrompts.load(full.soft_prompts)
    seed = SoftPrompts.from_seed(adapter, 4)
    assert not torch.equal(sp_full.frame, seed.frame) and not torch.equal(sp_full.video, seed.video)
    assert sp_full.meta["trained"] is True and sp_full.meta["steps"] == 6

    # interrupted: SIGTERM arrives during the first sample of step 4 (mid-accumulation)
    calls = {"n": 0}
    real_run = Objective.run

    def run_and_signal(self, *a, **kw):
        if kw.get("grad", True):
            calls["n"] += 1
            if calls["n"] == 7:
                os.kill(os.getpid(), signal.SIGTERM)
        return real_run(self, *a, **kw)

    monkeypatch.setattr(Objective, "run", run_and_signal)
    part = train(_cfg(synthetic, tmp_path / "part", backbone), adapter=adapter, handle_signals=True)
    monkeypatch.setattr(Objective, "run", real_run)
    assert part.state == "stopped" and part.step == 3
    status = read_status(tmp_path / "part")
    assert status["state"] == "stopped" and "SIGTERM" in status["message"]
    assert ckpt.latest_checkpoint(tmp_path / "part" / "checkpoints").name == "step_000003"
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored (not ours)

    # A run folder written before the grounding options were nested stored them flat: still resumes.
    stored = json.loads((tmp_path / "part" / "config.json").read_text())
    assert stored["grounding"]["t_frame"] == 4 and "t_frame" not in stored
    flat = {k: v for k, v in stored.items() if k != "grounding"}
    flat.update({k: stored["grounding"][k] for k in GROUNDING_FIELDS})
    (tmp_path / "part" / "config.json").write_text(json.dumps(flat))
    resumed = train(TrainConfig(out=str(tmp_path / "part")), resume=True, adapter=adapter)
    assert resumed.state == "finished" and resumed.step == 6
    sp_res = SoftPrompts.load(resumed.soft_prompts)
    assert torch.equal(sp_full.frame, sp_res.frame) and torch.equal(sp_full.video, sp_res.video)
    assert _train_lines(tmp_path / "full") == _train_lines(tmp_path / "part")
    a = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "full" / "checkpoints"))
    b = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "part" / "checkpoints"))
    assert a.optimizer_tensors.keys() == b.optimizer_tensors.keys()
    assert all(torch.equal(a.optimizer_tensors[k], b.optimizer_tensors[k]) for k in a.optimizer_tensors)
    assert a.state["scheduler"] == b.state["scheduler"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(adapter, backbone, synthetic, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_run = Objective.run

    def nan_on_step_4(self, *a, **kw):
        out = real_run(self, *a, **kw)
        if kw.get("grad", True):
            calls["n"] += 1
            if calls["n"] == 4:
                r = out["frame"]
                out["frame"] = BranchResult(float("nan"), r.bce, r.dice, r.corr, r.maps, r.targets, False)
        return out

    monkeypatch.setattr(Objective, "run", nan_on_step_4)
    cfg = _cfg(synthetic, tmp_path / "run", backbone, batch_size=1, checkpoint_every=2, steps=10)
    with pytest.raises(TrainingDiverged, match=r"NaN.*step 4.*step_000002"):
        train(cfg, adapter=adapter)
    status = read_status(tmp_path / "run")
    assert status["state"] == "failed" and "step_000002" in status["message"]
    latest = ckpt.latest_checkpoint(tmp_path / "run" / "checkpoints")
    assert latest.name == "step_000002"
    good = ckpt.load_checkpoint(latest)
    assert torch.isfinite(good.soft_prompts.frame).all() and good.step == 2
    assert not (tmp_path / "run" / "soft_prompts.safetensors").exists()
    assert [r["step"] for r in _train_lines(tmp_path / "run")] == [1, 2, 3]


def test_bad_samples_are_skipped_and_counted(adapter, backbone, tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", videos=5, frames=4, size=56, objects=1, seed=2)
    meta = json.loads((data / "meta_expressions.json").read_text())
    (data / "Annotations" / "syn0001" / "00005.png").unlink()
    (data / "JPEGImages" / "syn0002" / "00000.jpg").write_bytes(b"\x00garbage")
    meta["videos"]["syn0003"]["expressions"]["0"]["exp"] = ""
    (data / "meta_expressions.json").write_text(json.dumps(meta))
    cfg = _cfg(data, tmp_path / "run", backbone, steps=4, checkpoint_every=0, val_samples=0)
    result = train(cfg, adapter=adapter)
    assert result.state == "finished"
    assert result.skipped.get("empty expression") == 1
    assert result.skipped.get("missing mask", 0) + result.skipped.get("unreadable frame", 0) >= 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "skipped syn000" in log
    assert read_status(tmp_path / "run")["skipped"] == result.skipped
    assert _train_lines(tmp_path / "run")[-1]["skipped"] == sum(result.skipped.values())


# -- checkpoint files -----------------------------------------------------------------------

def _opt_state(seed: int):
    torch.manual_seed(seed)
    soft = SoftPrompts(torch.randn(3, 8), torch.randn(3, 8), {"fingerprint": {}})
    opt = torch.optim.AdamW([soft.frame, soft.video], lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    (soft.frame.sum() + soft.video.pow(2).sum()).backward()
    opt.step()
    sched.step()
    return soft, opt, sched


def test_checkpoint_roundtrip_and_interrupted_write(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    soft, opt, sched = _opt_state(0)
    ckpt.save_checkpoint(root, 1, soft, opt, sched, {"micro": [4]}, keep_last=2)
    loaded = ckpt.load_checkpoint(ckpt.latest_checkpoint(root))
    assert loaded.step == 1 and loaded.state["micro"] == [4]
    assert torch.equal(loaded.soft_prompts.frame, soft.frame)
    soft2, opt2, sched2 = _opt_state(1)
    ckpt.optimizer_from_parts(opt2, loaded.optimizer_tensors, loaded.state["optimizer"])
    sd, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd["param_groups"] == sd2["param_groups"]
    assert all(torch.equal(sd["state"][i][k], sd2["state"][i][k]) for i in sd["state"] for k in sd["state"][i])

    # a write that dies half way (as under SIGKILL) leaves the previous checkpoint current
    import safetensors.torch as st

    real = st.save_file
    monkeypatch.setattr(st, "save_file", lambda t, path, metadata=None: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(root, 2, soft, opt, sched, {"micro": [8]})
    monkeypatch.setattr(st, "save_file", real)
    assert ckpt.latest_checkpoint(root).name == "step_000001"
    assert any(p.name.startswith(".tmp-step_000002") for p in root.iterdir())
    (root / "step_000003").mkdir()  # an incomplete folder is never picked
    assert ckpt.latest_checkpoint(root).name == "step_000001"
    for step in (2, 4, 5):
        ckpt.save_checkpoint(root, step, soft, opt, sched, {"micro": [step]}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step_000004", "step_000005"]
    (root / "latest.json").write_text("{corrupt")
    assert ckpt.latest_checkpoint(root).name == "step_000005"
    (root / "step_000005" / "trainer_state.json").write_text(json.dumps({"format": "other", "step": 5}))
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(root / "step_000005")


def test_sigkill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from steerseg_core.grounding.soft_prompts import SoftPrompts
        from steerseg_core.training import checkpoint as ckpt
        soft = SoftPrompts(torch.zeros(64, 4096), torch.zeros(64, 4096), {{}})
        opt = torch.optim.AdamW([soft.frame, soft.video])
        for step in range(1, 100000):
            with torch.no_grad():
                soft.frame.fill_(step); soft.video.fill_(-step)
            ckpt.save_checkpoint({str(root)!r}, step, soft, opt, None, {{"micro": [step]}}, keep_last=2)
            print(step, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):  # a few saves in, then kill at an arbitrary moment of a write
            proc.stdout.readline()
        time.sleep(0.013)
    finally:
        proc.kill()
        proc.wait()
    latest = ckpt.latest_checkpoint(root)
    loaded = ckpt.load_checkpoint(latest)
    assert loaded.step >= 5 and loaded.state["micro"] == [loaded.step]
    assert torch.all(loaded.soft_prompts.frame == loaded.step) and torch.all(loaded.soft_prompts.video == -loaded.step)


# -- CLI ------------------------------------------------------------------------------------

def test_train_config_holds_the_grounding_config_and_reads_the_old_flat_layout(tmp_path):
    from steerseg_core.cli import build_parser
    from steerseg_core.cli.train import config_from_args
    from steerseg_core.config import GroundingConfig

    flat = {"data": "d", "backbone": "b", "t_frame": 3, "t_video": 2, "layers": [1, 2], "n_prompts": 5,
            "frame_max_tokens": 9, "frame_batch_size": 2, "device": "cpu", "dtype": "float32", "use_cot": True,
            "steps": 7}
    cfg = TrainConfig.from_dict(flat)
    assert cfg.grounding == GroundingConfig(backbone="b", t_frame=3, t_video=2, layers=(1, 2), n_prompts=5,
                                            frame_max_tokens=9, frame_batch_size=2, device="cpu",
                                            dtype="float32", use_cot=True)
    assert cfg.steps == 7 and cfg.backbone == "b" and cfg.n_prompts == 5  # read-through views
    stored = cfg.to_dict()
    assert not set(GROUNDING_FIELDS) & set(stored) and stored["grounding"]["t_frame"] == 3
    assert TrainConfig.from_dict(stored) == cfg
    assert TrainConfig().grounding.use_cot is False  # training's default query prompt has no CoT
    with pytest.raises(InputError, match="unknown training option"):
        TrainConfig.from_dict({"grounding": {"nope": 1}})
    with pytest.raises(AttributeError):
        cfg.backbone = "x"  # set it on cfg.grounding
    args = build_parser().parse_args(["train", "--data", "d", "--out", str(tmp_path / "r"), "--backbone", "bb",
                                      "--t-frame", "5", "--layers", "2-3", "--frame-max-tokens", "64",
                                      "--n-prompts", "8", "--device", "cpu", "--cot", "--no-lock"])
    g = config_from_args(args).grounding
    assert (g.backbone, g.t_frame, g.layers, g.frame_max_tokens, g.n_prompts, g.device, g.use_cot) == \
        ("bb", 5, (2, 3), 64, 8, "cpu", True)


def test_cli_train_exports_and_refuses_to_overwrite(backbone, synthetic, tmp_path, capsys):
    out, export = tmp_path / "runs" / "cli", tmp_path / "checkpoints"
    argv = ["train", "--data", str(synthetic), "--backbone", str(backbone), "--out", str(out), "--steps", "2",
            "--batch-size", "1", "--n-prompts", "4", "--input-frames", "4", "--t-frame", "2", "--t-video", "2",
            "--frame-max-tokens", "8", "--no-grad-checkpointing", "--val-samples", "1", "--export-dir", str(export),
            "--name", "my prompts", "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "finished 2 steps" in printed and "correlation" in printed
    exported = list_checkpoints(export)
    assert [p.name for p in exported] == ["my_prompts.safetensors"]  # files.safe_name
    sp = SoftPrompts.load(exported[0])
    assert sp.meta["trained"] is True and sp.meta["steps"] == 2 and sp.meta["name"] == "my_prompts"
    assert "val_corr" in sp.meta["metrics"]
    assert not (tmp_path / "runs" / "train-cpu.lock").exists()  # released
    assert cli.main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_cot_option_adds_cached_attributes_to_the_query_prompt(adapter, backbone, synthetic, tmp_path, monkeypatch):
    import warnings

    from steerseg_core.config import GroundingConfig
    from steerseg_core.grounding.grounder import Grounder, PromptFormWarning
    from steerseg_core.video import load_clip

    texts, generated = [], []
    real_run = Objective.run
    real_generate = adapter.generate

    def spy(self, sample, soft, text=None, *a, **kw):
        texts.append(text)
        return real_run(self, sample, soft, text, *a, **kw)

    def counting_generate(prepared, max_new_tokens, soft=None):
        if soft is None:  # a CoT generation (the query-token generations carry the soft prompts)
            generated.append(1)
        return real_generate(prepared, max_new_tokens, soft)

    monkeypatch.setattr(Objective, "run", spy)
    monkeypatch.setattr(adapter, "generate", counting_generate)
    shared = tmp_path / "cot-cache"
    cfg = _cfg(synthetic, tmp_path / "run", backbone, steps=2, batch_size=1, checkpoint_every=0, val_samples=0,
               use_cot=True, cot_cache_dir=str(shared))
    res = train(cfg, adapter=adapter)
    (cache_file,) = shared.glob("*.json")  # one file for this backbone and CoT settings
    cache = json.loads(cache_file.read_text())["attributes"]
    assert len(cache) == 2 and all(isinstance(v, str) for v in cache.values()) and len(generated) == 2
    assert all("Distinguishing attributes of the target:" in t for t in texts)
    # another run on the same backbone reuses the cached attributes: no new CoT generation
    generated.clear()
    train(_cfg(synthetic, tmp_path / "run2", backbone, steps=2, batch_size=1, checkpoint_every=0, val_samples=0,
               use_cot=True, cot_cache_dir=str(shared)), adapter=adapter)
    assert generated == []
    # the prompt form is recorded in the checkpoint; a run with the other form is warned
    sp = SoftPrompts.load(res.soft_prompts, adapter.fingerprint)
    assert sp.meta["prompt_form"] == "cot" and sp.provenance("x")["trained_with_cot"] is True
    clip = load_clip(synthetic / "JPEGImages" / sorted(p.name for p in (synthetic / "JPEGImages").iterdir())[0])
    gcfg = GroundingConfig(backbone=str(backbone), frame_max_tokens=8, t_frame=2, t_video=2, use_cot=False,
                           query_max_new_tokens=1)
    with pytest.warns(PromptFormWarning, match="trained on the query with CoT attributes"):
        g = Grounder(adapter, gcfg, sp).ground(clip, "the object")
    assert g.warnings and "without attributes" in g.warnings[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptFormWarning)
        assert Grounder(adapter, gcfg, sp).ground(clip, "the object", attributes="round, red").warnings == ()
    plain = _cfg(synthetic, tmp_path / "plain", backbone, steps=1, batch_size=1, checkpoint_every=0, val_samples=0)
    texts.clear()
    res_plain = train(plain, adapter=adapter)
    assert texts and all("Distinguishing attributes" not in t for t in texts)  # default: no CoT in training
    assert SoftPrompts.load(res_plain.soft_prompts).meta["prompt_form"] == "plain"


@pytest.mark.slow
def test_data_parallel_two_processes_match_one(adapter, backbone, synthetic, tmp_path):
    """`torchrun`/`accelerate launch` path on CPU (gloo): 2 processes × 1 sample equal 1 × 2."""
    args = ["--data", str(synthetic), "--backbone", str(backbone), "--steps", "3", "--batch-size", "2",
            "--n-prompts", "4", "--input-frames", "4", "--t-frame", "4", "--t-video", "4", "--frame-max-tokens", "8",
            "--checkpoint-every", "2", "--val-samples", "1", "--eval-every", "0", "--warmup", "1", "--lr", "0.02",
            "--device", "cpu", "--no-grad-checkpointing", "--no-export", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m",
                           "steerseg_core", "train", "--out", str(tmp_path / "ddp"), *args],
                          env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished 3 steps") == 1  # only process 0 reports
    one = train(_cfg(synthetic, tmp_path / "one", backbone, steps=3, batch_size=2, checkpoint_every=2, lr=0.02,
                     warmup_steps=1, frame_max_tokens=8), adapter=adapter)
    a = SoftPrompts.load(tmp_path / "ddp" / "soft_prompts.safetensors")
    b = SoftPrompts.load(one.soft_prompts)
    assert torch.allclose(a.frame, b.frame, atol=1e-6) and torch.allclose(a.video, b.video, atol=1e-6)
    assert [r["samples"] for r in _train_lines(tmp_path / "ddp")] == [2, 2, 2]
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step_000003" / "trainer_state.json").read_text())
    assert state["world"] == 2 and state["micro"] == [3, 3]
    for x, y in zip(_train_lines(tmp_path / "ddp"), _train_lines(tmp_path / "one"), strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
