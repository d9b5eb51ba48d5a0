"""Soft-prompt training: the frozen LVLM's query-token rollout is steered onto the referred object.

Paper recipe (docs/method.md §6) as defaults: AdamW, lr 5e-4, cosine schedule with warmup, 6,500 steps,
effective batch 4 (gradient accumulation; divided over processes when data-parallel), 16 input
frames per sample, T_f keyframes for the frame branch and T_v frames for the video branch, each
branch with its own soft prompts. Only the soft prompts require grad; the LVLM stays frozen and in
eval mode. On CUDA the forward runs under bf16 autocast with activation checkpointing.

Training prompt: the query prompt *without* CoT attributes by default
(``prompts.query_prompt(expression, None)``): the CoT step costs a generation per expression and the
soft prompts then learn to steer from the expression alone. ``use_cot=True`` adds the CoT attributes,
generated once per expression (no soft prompts) and cached on disk per backbone, shared across runs
(``cot_cache.py``). The form ("plain" or "cot") is recorded in the run's config and in every
checkpoint's sidecar (``prompt_form``); inference warns when its own form differs.

A run folder holds ``config.json``, ``status.json`` (state, step, ETA, for the app), ``metrics.jsonl``
(one line per step; validation lines have ``"split": "val"``), ``train.log``, ``loss.png``,
``val_maps_init.png`` / ``val_maps_latest.png``, ``checkpoints/`` (resumable, see checkpoint.py) and
at the end ``soft_prompts.safetensors`` (+ a copy in ``export_dir``, the app's checkpoint list).

Sample order is a pure function of (seed, sample counter) and the counter is checkpointed, so a
resumed run on CPU continues bit for bit. SIGTERM / SIGINT stop the run at the next sample with a
checkpoint; a non-finite loss stops it without saving, keeping the last good checkpoint.

Multi-GPU data parallel (one process per GPU through accelerate; the soft-prompt gradients are
all-reduced, metrics averaged, only process 0 writes):

    accelerate launch --multi_gpu --num_processes 4 -m steerseg_core train \\
        --data /data/ref-youtube-vos --backbone Qwen/Qwen2.5-VL-7B-Instruct --out runs/qwen25
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DistributedEnv, distributed_env
from ..errors import InputError, SteerSegError
from ..files import atomic_write_json, safe_name
from ..grounding import prompts
from ..grounding.grounder import Grounder
from ..grounding.soft_prompts import SoftPrompts
from . import checkpoint as ckpt
from . import plots
from .config import TrainConfig, lr_factor, prompt_form
from .cot_cache import CoTCache, cache_key
from .data import BadSample, Dataset, SkipCounter, TrainSample, load_sample, open_dataset
from .lock import RunLock
from .objective import Objective, branch_frame_indices, summarise

log = logging.getLogger("steerseg.train")

EXIT_DIVERGED = 3


class TrainingDiverged(SteerSegError):
    """The loss (or a gradient) became NaN/inf; the run stopped and kept its last good checkpoint."""


@dataclass
class TrainResult:
    state: str  # finished | stopped
    step: int
    run_dir: Path
    soft_prompts: Path | None
    exported: Path | None
    last: dict[str, float] = field(default_factory=dict)
    val_init: dict[str, float] | None = None
    val_final: dict[str, float] | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    main_process: bool = True


class _Dist:
    """Process group facts; a no-op shim for one process."""

    def __init__(self, cpu: bool = False, env: DistributedEnv | None = None) -> None:
        self.world, self.rank = 1, 0
        if (env or distributed_env()).world_size > 1:
            from accelerate import PartialState

            state = PartialState(cpu=cpu)
            self.world, self.rank = state.num_processes, state.process_index
            self.device = state.device
        else:
            self.device = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def average_grads(self, params: list[torch.Tensor]) -> None:
        if self.world == 1:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad /= self.world

    def gather_int(self, value: int) -> list[int]:
        if self.world == 1:
            return [value]
        t = torch.zeros(self.world, dtype=torch.int64, device=self.device)
        t[self.rank] = value
        torch.distributed.all_reduce(t)
        return [int(x) for x in t.tolist()]


@dataclass
class _Run:
    """What one run trains with, built once by ``Trainer._build``."""

    adapter: Any
    soft: SoftPrompts
    grounder: Grounder
    objective: Objective
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    accum: int  # micro-batches per optimizer step on this process


class Trainer:
    """One run. ``run()`` trains to ``config.steps`` (or until stopped) and returns a TrainResult."""

    def __init__(self, config: TrainConfig, *, resume: bool = False, adapter=None, progress: bool = False,
                 on_step: Callable[[Trainer, dict[str, Any]], None] | None = None,
                 handle_signals: bool = False) -> None:
        config.validate()
        self.config = config
        self.resume = resume
        self.run_dir = Path(config.out)
        self.progress = progress
        self.on_step = on_step
        self.handle_signals = handle_signals
        self._adapter = adapter
        self._stop_reason: str | None = None
        self.dist = _Dist(cpu=config.grounding.device == "cpu")
        self.step = 0
        self._resume_note = ""  # which damaged checkpoints a resume passed over
        self.micro = 0
        self.skipped = SkipCounter()
        self._perm_cache: dict[int, np.ndarray] = {}
        self._status: dict[str, Any] = {}
        self._started = time.time()
        self._elapsed_before = 0.0
        self._step_time: float | None = None
        self._cot: CoTCache | None = None
        self.cot_generated = 0  # CoT answers generated by this process (the rest came from the cache)

    # -- control --------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop at the next sample boundary, saving a checkpoint (used by the SIGTERM handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    def _signal(self, signum, frame) -> None:
        if self.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request_stop(f"received {signal.Signals(signum).name}")
        log.info("%s: stopping after the current sample with a checkpoint", signal.Signals(signum).name)

    # -- paths and files --------------------------------------------------------------------------
    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def _write_status(self, **updates: Any) -> None:
        if not self.dist.main:
            return
        self._status.update(updates)
        self._status.update(pid=os.getpid(), run_id=self.config.run_id or self.run_dir.name,
                            step=self.step, total_steps=self.config.steps, updated_at=time.time(),
                            skipped=self.skipped.to_dict())
        atomic_write_json(self.run_dir / "status.json", self._status)

    def _append_metrics(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _setup_logging(self) -> logging.Handler | None:
        if not self.dist.main:
            return None
        handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        return handler

    # -- data -----------------------------------------------------------------------------------
    def _datasets(self) -> tuple[Dataset, Dataset]:
        data = open_dataset(self.config.data)
        if self.config.val_data:
            train = data
            val = open_dataset(self.config.val_data)
            val = Dataset(val.records[: self.config.val_samples], val.skipped, val.layout, val.root)
        else:
            train, val = data.split(self.config.val_samples, self.config.seed)
        if not train.records:
            raise InputError(f"no usable training samples in '{self.config.data}' ({data.skipped.summary()})")
        return train, val

    def _record_for(self, k: int, n: int) -> tuple[int, int]:
        """(record index, global sample number) of this process's k-th sample."""
        g = k * self.dist.world + self.dist.rank
        epoch, pos = divmod(g, n)
        perm = self._perm_cache.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.config.seed, epoch]).permutation(n)
            self._perm_cache = {epoch: perm}
        return int(perm[pos]), g

    def _next_sample(self, train: Dataset) -> TrainSample:
        bad_in_a_row = 0
        while True:
            idx, g = self._record_for(self.micro, len(train.records))
            self.micro += 1
            record = train.records[idx]
            try:
                return load_sample(record, self.config.input_frames,
                                   np.random.default_rng([self.config.seed, 1, g]), self.config.max_side)
            except BadSample as bad:
                self.skipped.add(bad.reason)
                log.warning("skipped %s: %s (%s so far)", record.key, bad, self.skipped.summary())
                bad_in_a_row += 1
                if bad_in_a_row >= min(self.config.max_bad_in_a_row, max(len(train.records), 1)):
                    raise InputError(f"no usable sample in {bad_in_a_row} tries: {self.skipped.summary()}") from bad

    # -- CoT attributes (optional) ----------------------------------------------------------------
    def _query_text(self, grounder: Grounder, record_key: str, sample: TrainSample) -> str:
        if not self.config.grounding.use_cot:
            return prompts.query_prompt(sample.expression, None)
        cache = self._cot_cache(grounder)
        attributes = cache.get(record_key)
        if attributes is None:
            frames = sample.frames[branch_frame_indices(len(sample.frames), self.config.grounding.t_video)]
            cot = grounder.cot_frames(frames, sample.expression, max(sample.fps, 1e-3))
            attributes = cot.attributes_text
            cache.put(record_key, attributes, write=self.dist.main)
            self.cot_generated += 1
        return prompts.query_prompt(sample.expression, attributes)

    def _cot_cache(self, grounder: Grounder) -> CoTCache:
        """The shared CoT-attribute cache of this backbone and these settings (opened once)."""
        if self._cot is None:
            from ..config import paths_from_env

            g = self.config.grounding
            folder = Path(self.config.cot_cache_dir) if self.config.cot_cache_dir else paths_from_env().cache / "cot"
            settings = {"t_video": g.t_video, "frame_max_tokens": g.frame_max_tokens,
                        "input_frames": self.config.input_frames, "max_side": self.config.max_side,
                        "cot_max_new_tokens": grounder.config.cot_max_new_tokens}
            self._cot = CoTCache(folder, cache_key(g.backbone, grounder.adapter.fingerprint, settings))
        return self._cot

    # -- the run --------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        cfg_path = self.run_dir / "config.json"
        if self.resume:
            if ckpt.latest_checkpoint(self.ckpt_root) is None:
                raise InputError(f"nothing to resume: '{self.run_dir}' has no checkpoint")
        elif ckpt.latest_checkpoint(self.ckpt_root) is not None:
            raise InputError(f"'{self.run_dir}' already holds a run; pass --resume to continue it or choose "
                             "another --out")
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            atomic_write_json(cfg_path, self.config.to_dict())

    def _load_adapter(self):
        if self._adapter is not None:
            return self._adapter
        from ..grounding.lvlm import load_adapter

        device = str(self.dist.device) if self.dist.world > 1 else self.config.grounding.device
        return load_adapter(self.config.grounding.backbone, device, self.config.grounding.dtype)

    def run(self) -> TrainResult:
        cfg = self.config
        lock = RunLock(cfg.lock_file) if (cfg.lock_file and self.dist.main) else None
        if lock is not None:  # before touching the run folder: a refused run changes nothing
            from .runs import device_label

            lock.acquire({"run_id": cfg.run_id or self.run_dir.name, "run_dir": str(self.run_dir),
                          "device": device_label(cfg.grounding.device)}, adopt_from=(os.getppid(), os.getpid()))
        handler = None
        prev_handlers: dict[int, Any] = {}
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                prev_handlers[sig] = signal.signal(sig, self._signal)
        try:
            self._prepare_run_dir()
            handler = self._setup_logging()
            self._write_status(state="starting", started_at=self._started, message="loading the model")
            return self._run()
        except TrainingDiverged as err:
            self._write_status(state="failed", message=str(err))
            log.error("%s", err)
            raise
        except BaseException as err:
            if handler is not None:  # the run folder is ours: record why it ended
                self._write_status(state="failed", message=f"{type(err).__name__}: {err}" if not
                                   isinstance(err, SteerSegError) else str(err))
                log.exception("training failed")
            raise
        finally:
            for sig, h in prev_handlers.items():
                signal.signal(sig, h)
            if lock is not None:
                lock.release()
            if handler is not None:
                log.removeHandler(handler)
                handler.close()

    def _run(self) -> TrainResult:
        """The run, top to bottom: data, model and optimiser, resume point, the loop, the ending."""
        torch.manual_seed(self.config.seed)
        train, val = self._load_data()
        run = self._build(self._load_adapter())
        if self.resume:
            self._restore(run.soft, run.optimizer, run.scheduler, run.adapter)
        val_samples = self._load_val(val)
        val_init = None
        if not self.resume and val_samples:
            val_init = self._evaluate(run.objective, run.grounder, val_samples, tag="init")
        self._write_status(state="running", message=self._resume_note or "training", device=str(run.adapter.device),
                           backbone=self.config.grounding.backbone, data=self.config.data)
        last = self._train_loop(run, train, val_samples)
        if self.step >= self.config.steps:
            return self._finish(run, last, val_init, val_samples)
        return self._stopped(run, last, val_init)

    # -- the steps of a run ---------------------------------------------------------------------------
    def _load_data(self) -> tuple[Dataset, Dataset]:
        train, val = self._datasets()
        self.skipped = SkipCounter.from_dict(train.skipped.to_dict())
        log.info("data: %d training samples (%s layout), %d held out; indexing: %s", len(train), train.layout,
                 len(val), train.skipped.summary())
        return train, val

    def _build(self, adapter) -> _Run:
        """Soft prompts (seed or ``init_from``), the grounder and objective, AdamW + cosine schedule."""
        cfg = self.config
        n_prompts = cfg.grounding.n_prompts
        gcfg = dataclasses.replace(cfg.grounding, query_max_new_tokens=1)  # only the first token counts
        if cfg.init_from:
            soft = SoftPrompts.load(cfg.init_from, adapter.fingerprint)
            if soft.n_prompts != n_prompts:
                raise InputError(f"'{cfg.init_from}' has N_p = {soft.n_prompts}, not {n_prompts}")
        else:
            soft = SoftPrompts.from_seed(adapter, n_prompts, cfg.seed_frame, cfg.seed_video)
        soft.to(adapter.device)
        grounder = Grounder(adapter, gcfg, soft)
        objective = Objective(grounder, gcfg.t_frame, gcfg.t_video, gcfg.frame_batch_size,
                              cfg.gradient_checkpointing, cfg.autocast, cfg.branches)
        params = [soft.frame, soft.video]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio))
        accum = max(1, math.ceil(cfg.batch_size / self.dist.world))
        return _Run(adapter, soft, grounder, objective, params, optimizer, scheduler, accum)


    def _train_loop(self, run: _Run, train: Dataset, val_samples: list[TrainSample]) -> dict[str, float]:
        """Optimizer steps until ``steps`` or a stop that every process agrees on; the last metrics."""
        bar = self._bar()
        last: dict[str, float] = {}
        while self.step < self.config.steps and not self._agree_stop():
            t0 = time.perf_counter()
            accumulated = self._accumulate(run, train)
            if accumulated is None:  # stopped mid-step
                break
            metrics, samples = accumulated
            lr, grad_norm = self._optimizer_step(run)
            dt = time.perf_counter() - t0
            last = {**metrics, "lr": lr, "grad_norm": grad_norm}
            self._report_step(last, samples, dt, bar)
            self._periodic(run, last, val_samples)
        if bar is not None:
            bar.close()
        return last

    def _accumulate(self, run: _Run, train: Dataset) -> tuple[dict[str, float], int] | None:
        """Forward/backward ``accum`` samples into the gradients; the metrics averaged over every
        process and the sample count, or None when a stop arrived (the partial step is undone, so
        a resume redoes it exactly)."""
        micro_at_start, skipped_at_start = self.micro, self.skipped.to_dict()
        run.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        n = 0
        interrupted = False
        bad_sample: str | None = None
        for _ in range(run.accum):
            if self.stopping:
                interrupted = True
                break
            sample = self._next_sample(train)
            text = self._query_text(run.grounder, sample.key, sample)
            results = run.objective.run(sample, run.soft, text, scale=1.0 / run.accum, grad=True)
            if not all(r.finite for r in results.values()):
                bad_sample = bad_sample or sample.key  # nothing was backpropagated from it
            for k, v in summarise(results).items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        if self.dist.any(bad_sample is not None):  # every process stops together
            raise self._diverged(f"the loss became NaN/inf (sample {bad_sample or 'on another process'})")
        if self.dist.any(interrupted):
            self.micro, self.skipped = micro_at_start, SkipCounter.from_dict(skipped_at_start)
            self.request_stop(self._stop_reason or "stop requested on another process")
            return None
        self.dist.average_grads(run.params)
        keys = sorted(sums)
        totals = self.dist.sum([sums[k] for k in keys] + [float(n)])
        metrics = {k: v / max(totals[-1], 1.0) for k, v in zip(keys, totals[:-1], strict=True)}
        return metrics, int(totals[-1])

    def _optimizer_step(self, run: _Run) -> tuple[float, float]:
        """Check and clip the gradients, step the optimizer and schedule; (lr used, grad norm)."""
        grads = [p.grad for p in run.params if p.grad is not None]
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            raise self._diverged("a soft-prompt gradient became NaN/inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, self.config.max_grad_norm or float("inf")))
        lr = run.optimizer.param_groups[0]["lr"]
        run.optimizer.step()
        run.scheduler.step()
        self.step += 1
        return lr, grad_norm

    def _report_step(self, last: dict[str, float], samples: int, dt: float, bar) -> None:
        """metrics.jsonl line, status.json (ETA) and the progress bar or a log line."""
        cfg = self.config
        self._step_time = dt if self._step_time is None else 0.9 * self._step_time + 0.1 * dt
        self._append_metrics({"split": "train", "step": self.step, **{k: round(v, 6) for k, v in last.items()},
                              "samples": samples, "skipped": self.skipped.total,
                              "step_time": round(dt, 4), "time": round(self._elapsed(), 2)})
        eta = self._step_time * (cfg.steps - self.step)
        lr = last["lr"]
        self._write_status(state="stopping" if self.stopping else "running", eta_s=round(eta, 1),
                           loss=last["loss"], corr=last["corr"], lr=lr,
                           message="stopping: saving a checkpoint" if self.stopping else "training")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.3f}", corr=f"{last['corr']:.3f}", lr=f"{lr:.2e}")
        elif cfg.log_every and (self.step % cfg.log_every == 0 or self.step == 1):
            log.info("step %d/%d  loss %.4f (BCE %.4f, Dice %.4f)  corr %.3f  lr %.2e  %.2f s/step  ETA %s",
                     self.step, cfg.steps, last["loss"], last["bce"], last["dice"], last["corr"], lr,
                     self._step_time, _eta(eta))

    def _periodic(self, run: _Run, last: dict[str, float], val_samples: list[TrainSample]) -> None:
        """Held-out evaluation and checkpoint every N steps (the final ones are the ending's), then
        the ``on_step`` hook."""
        cfg = self.config
        if cfg.eval_every and self.step % cfg.eval_every == 0 and val_samples and self.step < cfg.steps:
            self._evaluate(run.objective, run.grounder, val_samples, tag="latest")
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
            self._save(run.soft, run.optimizer, run.scheduler, last)
        if self.on_step is not None:
            self.on_step(self, last)

    def _finish(self, run: _Run, last: dict[str, float], val_init: dict[str, float] | None,
                val_samples: list[TrainSample]) -> TrainResult:
        """All steps done: final evaluation, checkpoint, export, plot, status."""
        val_final = self._evaluate(run.objective, run.grounder, val_samples, tag="latest") if val_samples else None
        self._save(run.soft, run.optimizer, run.scheduler, last)
        final, exported = self._export(run.soft, last, val_final)
        self._plot()
        self._write_status(state="finished", eta_s=0, message=f"finished: {(exported or final or self.run_dir).name}",
                           soft_prompts=str(final), exported=str(exported) if exported else None)
        log.info("finished %d steps; soft prompts: %s; %s", self.step, exported or final, self.skipped.summary())
        return TrainResult("finished", self.step, self.run_dir, final, exported, last, val_init, val_final,
                           self.skipped.to_dict(), self.dist.main)

    def _stopped(self, run: _Run, last: dict[str, float], val_init: dict[str, float] | None) -> TrainResult:
        """Stopped early: checkpoint (a resume continues from it), plot, status."""
        folder = self._save(run.soft, run.optimizer, run.scheduler, last)
        self._plot()
        self._write_status(state="stopped", eta_s=None, message=f"stopped at step {self.step} "
                           f"({self._stop_reason}); Resume (or --resume) continues it", checkpoint=str(folder))
        log.info("stopped at step %d (%s); checkpoint %s", self.step, self._stop_reason, folder)
        return TrainResult("stopped", self.step, self.run_dir, None, None, last, val_init, None,
                           self.skipped.to_dict(), self.dist.main)

    def _agree_stop(self) -> bool:
        return self.dist.any(self.stopping)

    def _elapsed(self) -> float:
        return self._elapsed_before + (time.time() - self._started)

    def _bar(self):
        if not (self.progress and self.dist.main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)

    def _diverged(self, what: str) -> TrainingDiverged:
        good = ckpt.latest_checkpoint(self.ckpt_root)
        keep = f"the last good checkpoint is {good.name}" if good else "no checkpoint had been saved yet"
        return TrainingDiverged(f"{what} at step {self.step + 1}; the run stopped and {keep} (try a lower "
                                f"--lr, then --resume)")

    # -- validation -------------------------------------------------------------------------------
    def _load_val(self, val: Dataset) -> list[TrainSample]:
        samples = []
        for r in val.records:
            try:
                samples.append(load_sample(r, self.config.input_frames, None, self.config.max_side))
            except BadSample as bad:
                log.warning("held-out sample %s skipped: %s", r.key, bad)
        return samples

    def _evaluate(self, objective: Objective, grounder: Grounder, samples: list[TrainSample],
                  tag: str) -> dict[str, float] | None:
        """Mean metrics over the held-out samples (no grad; process 0 only); maps of the first one
        as a figure."""
        if not self.dist.main:
            return None
        per = []
        first = None
        for s in samples:
            res = objective.run(s, grounder.soft_prompts, self._query_text(grounder, s.key, s), grad=False)
            per.append(summarise(res))
            first = first or (s, res)
        metrics = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        self._append_metrics({"split": "val", "step": self.step, **{k: round(v, 6) for k, v in metrics.items()},
                              "samples": len(per)})
        log.info("held-out at step %d: loss %.4f, correlation %.4f", self.step, metrics["loss"], metrics["corr"])
        if first is not None:
            s, res = first
            branch = "frame" if "frame" in res else "video"
            r = res[branch]
            if branch == "frame":
                frames = s.frames[branch_frame_indices(len(s.frames), self.config.grounding.t_frame)]
            else:
                per_slot = max(1, round(len(branch_frame_indices(len(s.frames), self.config.grounding.t_video)) / len(r.maps)))
                frames = s.frames[branch_frame_indices(len(s.frames), self.config.grounding.t_video)][::per_slot]
            fig = plots.attention_figure(frames, r.maps, r.targets,
                                         f"{s.key}: “{s.expression}” — step {self.step}, r = {r.corr:.3f}")
            plots.save_figure(fig, self.run_dir / f"val_maps_{tag}.png")
            if tag == "init":
                shutil.copyfile(self.run_dir / "val_maps_init.png", self.run_dir / "val_maps_latest.png")
        self._write_status(val_corr=metrics["corr"], val_loss=metrics["loss"], val_step=self.step)
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"micro": self.dist.gather_int(self.micro), "world": self.dist.world, "skipped": self.skipped.to_dict(),
                "elapsed_s": self._elapsed(), "run_id": self.config.run_id or self.run_dir.name}

    def _soft_meta(self, last: dict[str, float], trained: bool) -> dict[str, Any]:
        return {"trained": trained, "steps": self.step, "name": self.config.name or self.run_dir.name,
                "prompt_form": prompt_form(self.config.use_cot),
                "metrics": {k: round(float(v), 6) for k, v in last.items()}, "dataset": str(self.config.data),
                "training": {"lr": self.config.lr, "batch_size": self.config.batch_size,
                             "input_frames": self.config.input_frames, "use_cot": self.config.grounding.use_cot,
                             "total_steps": self.config.steps}}

    def _save(self, soft, optimizer, scheduler, last: dict[str, float]) -> Path | None:
        state = self._state()  # collective: every process takes part
        if not self.dist.main:
            return None
        folder = ckpt.save_checkpoint(self.ckpt_root, self.step, soft, optimizer, scheduler, state,
                                      self.config.keep_checkpoints, self._soft_meta(last, self.step > 0))
        self._write_status(checkpoint=str(folder))
        self._plot()
        log.info("checkpoint %s", folder.name)
        return folder

    def _restore(self, soft, optimizer, scheduler, adapter) -> None:
        folder, loaded, note = ckpt.load_newest_intact(self.ckpt_root, adapter.fingerprint)
        self._resume_note = note
        if note:
            log.warning("%s", note)
        with torch.no_grad():
            soft.frame.copy_(loaded.soft_prompts.frame)
            soft.video.copy_(loaded.soft_prompts.video)
        ckpt.optimizer_from_parts(optimizer, loaded.optimizer_tensors, loaded.state["optimizer"])
        if loaded.state.get("scheduler"):
            scheduler.load_state_dict(dict(loaded.state["scheduler"]))
        ckpt.restore_rng(loaded.rng, loaded.state.get("rng", {}))
        self.step = loaded.step
        micro = loaded.state.get("micro", [0])
        self.micro = micro[self.dist.rank] if loaded.state.get("world") == self.dist.world else max(micro)
        self.skipped = SkipCounter.from_dict(loaded.state.get("skipped"))
        self._elapsed_before = float(loaded.state.get("elapsed_s", 0.0))
        self._started = time.time()
        if self.dist.main:  # drop metrics logged after the checkpoint (they will be redone)
            self._truncate_metrics(self.step)
        log.info("resumed from %s (step %d)", folder.name, self.step)

    def _truncate_metrics(self, step: int) -> None:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("step", 0) <= step:
                keep.append(line)
        path.write_text("".join(x + "\n" for x in keep), encoding="utf-8")

    def _export(self, soft: SoftPrompts, last: dict[str, float],
                val: dict[str, float] | None) -> tuple[Path | None, Path | None]:
        if not self.dist.main:
            return None, None
        meta = self._soft_meta(last, True)
        if val:
            meta["metrics"].update({f"val_{k}": round(v, 6) for k, v in val.items()})
        final = soft.save(self.run_dir / "soft_prompts.safetensors", **meta)
        exported = None
        if self.config.export_dir:
            name = safe_name(self.config.name or f"{Path(self.config.grounding.backbone).name}-{self.run_dir.name}",
                             "soft-prompts")
            exported = soft.save(Path(self.config.export_dir) / f"{name}.safetensors", **{**meta, "name": name})
        return final, exported

    def _plot(self) -> None:
        if not self.dist.main:
            return
        from .runs import read_metrics

        records = read_metrics(self.run_dir)
        if records:
            plots.save_figure(plots.metrics_figure(records, self.run_dir.name), self.run_dir / "loss.png")


def _eta(seconds: float) -> str:
    s = int(max(0.0, seconds))
    h, rem = divmod(s, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def resumed_config(config: TrainConfig) -> TrainConfig:
    """The configuration a resume runs with: the one the run was started with (its ``config.json``,
    old flat or nested), export folder and name included — a run started with --no-export must not
    export into ./checkpoints when resumed — with only where it runs taken from the resume (out,
    device, lock)."""
    stored = Path(config.out) / "config.json"
    if not stored.exists():
        return config
    try:
        data = json.loads(stored.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"'{stored.parent.name}/config.json' cannot be read ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"'{stored.parent.name}/config.json' must hold a JSON object")
    old = TrainConfig.from_dict(data)
    return dataclasses.replace(old, out=config.out, lock_file=config.lock_file,
                               grounding=dataclasses.replace(old.grounding, device=config.grounding.device))


def train(config: TrainConfig, *, resume: bool = False, progress: bool = False, adapter=None,
          on_step: Callable[[Trainer, dict[str, Any]], None] | None = None, handle_signals: bool = False) -> TrainResult:
    """Run (or resume) one training run; see the module docstring for what lands where."""
    if resume:
        config = resumed_config(config)
    return Trainer(config, resume=resume, adapter=adapter, progress=progress, on_step=on_step,
                   handle_signals=handle_signals).run()
