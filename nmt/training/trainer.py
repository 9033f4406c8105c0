"""Training: token-bucketed batches, Adam, clipping, label smoothing, validation with BLEU,
the LR schedule (`nmt.training.schedule`), early stopping, atomic checkpoints and exact
resume. `nmt.training.run.train` starts or resumes a run around this loop.

Resume is exact: `last.pt` holds the model, optimizer, scheduler, RNG state and a
`TrainState` with the epoch and the position inside it, so a run interrupted at any point
(even SIGKILL) and resumed from its last checkpoint ends with the same weights as a run that
was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from nmt import checkpoint
from nmt.config import Config
from nmt.cpu import accelerate, switches
from nmt.data.batching import BatchIterator
from nmt.data.corpus import load_split, prepare_split
from nmt.data.stream import StreamingBatches, sample_texts
from nmt.data.vocab import Vocabs, train_vocabs
from nmt.decoding.decode import decode_ids, greedy_search
from nmt.errors import Interrupted, NmtError
from nmt.io import atomic_open
from nmt.metrics import Score, corpus_bleu
from nmt.model.seq2seq import build_model, count_parameters
from nmt.training import resume
from nmt.training.curves import MetricsLog
from nmt.training.device import (
    autocast,
    grad_scaler,
    keep_freed_memory,
    resolve_amp,
    resolve_device,
)
from nmt.training.distributed import (
    DistInfo,
    broadcast_float,
    gather_objects,
    shard,
    sum_float,
    sum_int,
    wrap,
)
from nmt.training.schedule import budget_horizon, linear_lr, time_horizon
from nmt.training.word_dropout import word_dropout


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs to continue where it stopped."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained
    train_seconds: float = 0.0  # wall time of the whole run so far, across resumes
    target_tokens: int = 0
    best_bleu: float = -1.0  # dev BLEU of the weights in best.pt
    best_step: int = 0
    schedule_best: float = -1.0  # best dev BLEU of the scheduled validations (early stopping)
    bad_validations: int = 0  # scheduled validations since schedule_best (early stopping)
    last_validated_step: int = -1
    early_stop: str = ""  # set when dev BLEU stopped improving; final, unlike budgets
    stopped: str = ""  # why the latest run ended
    loop_start: float | None = None  # run seconds when the first update began
    lr_horizon: int | None = None  # the linear LR schedule's last update, once fixed
    history: list[dict] = field(default_factory=list)


class Trainer:
    """One process's training loop; under torchrun, one rank of a DDP job (see
    `nmt.training.distributed`): only rank 0 logs, validates and writes files.

    `started` is the `time.perf_counter()` at which this process began the run (data and
    subword preparation count against `max_time`; default: now).
    """

    def __init__(self, cfg: Config, model_dir: Path, vocabs: Vocabs, quiet: bool = False,
                 dist_info: DistInfo | None = None, started: float | None = None):
        self.cfg, self.model_dir, self.vocabs = cfg, model_dir, vocabs
        self.started = time.perf_counter() if started is None else started
        self.seconds_before = 0.0  # wall time of the earlier processes of a resumed run
        self.stop_cost = 0.0  # seconds the last validation and checkpoint took
        self.dist = dist_info or DistInfo()
        self.quiet = quiet or not self.dist.is_main
        tc = cfg.train
        keep_freed_memory()
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        if cfg.data.streaming:
            self.batches = StreamingBatches(cfg.data, vocabs.src, vocabs.tgt, tc.batch_tokens,
                                            tc.seed)
            n_train = "streamed"
        else:
            train_ds, report = prepare_split(cfg.data, cfg.data.train_split, vocabs.src,
                                             vocabs.tgt, train=True, limit=cfg.data.max_train_pairs)
            self.log(str(report))
            self.batches = BatchIterator(train_ds, tc.batch_tokens, tc.seed)
            n_train = f"{len(train_ds):,}"
        dev_ds, dev_report = prepare_split(cfg.data, cfg.data.dev_split, vocabs.src, vocabs.tgt,
                                           train=False, limit=cfg.data.max_dev_pairs)
        self.log(str(dev_report))
        self.dev_src_ids, self.dev_refs = dev_ds["src_ids"], dev_ds["tgt"]
        self.device = resolve_device(tc.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
        self.amp = resolve_amp(tc.amp, self.device)
        torch.manual_seed(tc.seed)
        # the CPU kernels below the model (they fall back to torch on other devices)
        self.model = accelerate(build_model(cfg.model, len(vocabs.src), len(vocabs.tgt)))
        self.model = self.model.to(self.device)
        if self.dist.enabled:  # the same initial weights, but each rank its own dropout masks
            torch.manual_seed(tc.seed + 1_000_003 * self.dist.rank)
        self.scaler = grad_scaler(self.device, self.amp)
        self.ddp = wrap(self.model, self.dist, self.device)  # what the forward pass runs
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tc.lr, fused=True,
                                          weight_decay=tc.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=tc.lr_decay, patience=tc.lr_patience,
            min_lr=tc.min_lr)
        self.state = TrainState()
        self.epoch_len = 0  # batches in the current epoch
        self.curves = MetricsLog(model_dir, tc.tensorboard) if self.dist.is_main else None
        self.log(f"model: {count_parameters(self.model):,} parameters, "
                 f"{n_train} training pairs, {len(self.dev_refs):,} dev pairs")

    # ------------------------------------------------------------------ bookkeeping

    def log(self, msg: str, echo: bool = True) -> None:
        """A line in train.log, and on stderr unless quiet or `echo` is False."""
        if not self.dist.is_main:
            return
        with open(self.model_dir / "train.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        if echo and not self.quiet:
            tqdm.write(msg, file=sys.stderr)

    def save_last(self) -> None:
        """`last.pt` (rank 0 writes; every rank must call it: the RNG states are gathered).

        The state's wall time is brought up to now first, so validation and checkpoint time
        after the last update counts as well.
        """
        self.state.train_seconds = self.elapsed()
        rng = gather_objects(self.rng_state(), self.dist)
        if not self.dist.is_main:
            return
        checkpoint.save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "train_state": dataclasses.asdict(self.state), "config": self.cfg.to_dict(),
            "exactness": exactness_conditions(),
        }, self.model_dir / "last.pt")
        self.log(f"checkpoint: step {self.state.step} saved to last.pt")

    def rng_state(self) -> dict:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"cpu": torch.get_rng_state(), "cuda": cuda}

    def save_numbered(self) -> None:
        """Weights as `step{N}.pt` (for averaging), keeping those of the newest
        `keep_checkpoints` validations and as many around the best one (`checkpoint.around`;
        the history already holds this validation)."""
        checkpoint.save({"model": self.model.state_dict(), "config": self.cfg.to_dict(),
                         "train_state": {"step": self.state.step}},
                        self.model_dir / f"step{self.state.step}.pt")
        n, history = self.cfg.train.keep_checkpoints, self.state.history
        steps = [h["step"] for h in history]
        keep = set(steps[-n:]) | set(checkpoint.around(
            steps, checkpoint.best_validation_step(history), n))
        for old in checkpoint.numbered(self.model_dir):
            if int(old.stem[4:]) not in keep:
                old.unlink()

    def restore(self, ckpt: dict, changed: list[str]) -> None:
        """Continue the run of `ckpt` (last.pt): weights, optimizer, scheduler, RNG states
        and position; then apply the train.* keys `changed` since (`resume.check_config`)."""
        path = self.model_dir / "last.pt"
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        rng = ckpt["rng"]
        if not isinstance(rng, list):
            raise NmtError(f"{path}: written by an older nmt without per-process RNG states; "
                           "it cannot be resumed")
        if len(rng) != self.dist.world_size:
            raise NmtError(f"{path} was saved by {len(rng)} process(es); "
                           f"resume it with as many (this run has {self.dist.world_size})")
        torch.set_rng_state(rng[self.dist.rank]["cpu"])
        if self.device.type == "cuda" and rng[self.dist.rank]["cuda"] is not None:
            torch.cuda.set_rng_state(rng[self.dist.rank]["cuda"], self.device)
        if self.scaler and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        saved_state = ckpt["train_state"]
        self.state = TrainState(**saved_state)
        if "schedule_best" not in saved_state:  # written before best.pt could hold a stop's
            self.state.schedule_best = self.state.best_bleu
        self.seconds_before = self.state.train_seconds
        if self.curves:
            self.curves.truncate_after(self.state.step)
        self.log(f"resumed at step {self.state.step} (epoch {self.state.epoch + 1}, "
                 f"batch {self.state.batch_in_epoch})")
        resume.apply_schedule(self.cfg.train, self.optimizer, self.scheduler, changed)
        old = ckpt["config"]["train"]
        for key in changed:
            self.log(f"resume: train.{key} {old.get(key)!r} -> {getattr(self.cfg.train, key)!r}")
        if "patience" in changed:
            self.state.early_stop = resume.early_stop_after(self.cfg.train,
                                                            self.state.bad_validations)
        saved, now = ckpt.get("exactness"), exactness_conditions()
        if saved is not None and saved != now:
            self.log(f"resume: the run was saved with {_describe(saved)} and continues with "
                     f"{_describe(now)}; it goes on, but not bit-exactly as one run would")

    def epochs(self) -> float:
        """Epochs trained, fractional: whole epochs plus the share of the current one."""
        st = self.state
        return st.epoch + (st.batch_in_epoch / self.epoch_len if self.epoch_len else 0.0)

    def record(self, event: str, **values) -> None:
        """A line of metrics.jsonl (rank 0): the step, epoch, minutes and LR, and `values`."""
        if self.curves:
            st = self.state
            self.curves.write(event, step=st.step, epoch=round(self.epochs(), 4),
                              minutes=round(st.train_seconds / 60, 4),
                              lr=self.optimizer.param_groups[0]["lr"], **values)

    def elapsed(self) -> float:
        """Wall seconds of the whole run: earlier processes plus this one (rank 0's clock
        decides, so every rank stops at the same step)."""
        now = self.seconds_before + time.perf_counter() - self.started
        return broadcast_float(now, self.dist, self.device)

    # ------------------------------------------------------------------ steps

    def forward_backward(self, groups: list[list[int]]) -> tuple[float, int]:
        """The gradients of the batches `groups`, summed and divided by their total target
        tokens, in the parameters' `.grad` (no clipping, no update). Returns (summed loss,
        tokens)."""
        batches = [self.batches.batch(indices) for indices in groups]
        n_tokens = sum_int(sum(b.n_tokens for b in batches), self.dist, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, batch in enumerate(batches):
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            batch = word_dropout(batch, self.cfg.train.word_dropout)
            last = i == len(batches) - 1  # DDP: sum gradients across ranks only once
            with contextlib.nullcontext() if last or not self.dist.enabled else self.ddp.no_sync():
                with autocast(self.device, self.amp):
                    out = self.ddp(batch.src, batch.src_lengths, batch.tgt_in)
                    loss = out.loss(batch.tgt_out, self.cfg.train.label_smoothing)
                scaled = loss / n_tokens
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += loss.item()
        total = sum_float(total, self.dist, self.device)
        if not math.isfinite(total):
            raise NmtError(f"training diverged at step {self.state.step + 1}: loss is {total}")
        return total, n_tokens

    def train_update(self, groups: list[list[int]]) -> tuple[float, int]:
        """One optimizer update from the batches `groups` (update_freq of them, or fewer).

        The gradients of all batches are summed and divided by their total target tokens, so
        the update equals that of one batch holding them all. Returns (summed loss, tokens).
        """
        total, n_tokens = self.forward_backward(groups)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.train.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return total, n_tokens

    @torch.no_grad()
    def dev_bleu(self) -> tuple[Score | None, list[str]]:
        """Greedy decoding of the dev set and its BLEU, on rank 0 (others get None)."""
        if not self.dist.is_main:
            return None, []
        self.model.eval()
        hyps = decode_ids(self.model, self.dev_src_ids, greedy_search(self.cfg.decode),
                          self.cfg.decode.batch_size, self.device)
        self.model.train()
        texts = self.vocabs.tgt.decode([h.tokens for h in hyps])
        return corpus_bleu(texts, self.dev_refs), texts

    def validate(self) -> float:
        """A scheduled validation: dev BLEU, then the LR schedule, early stopping and
        best/numbered weights.

        Every rank calls it and takes the same decisions from rank 0's BLEU.
        """
        start = time.perf_counter()
        score, texts = self.dev_bleu()
        bleu = broadcast_float(score.value if score else 0.0, self.dist, self.device)
        st = self.state
        st.last_validated_step = st.step
        improved = bleu > st.schedule_best
        if improved:
            st.schedule_best, st.bad_validations = bleu, 0
        else:
            st.bad_validations += 1
        self.keep_if_best(bleu, texts)
        if self.cfg.train.lr_schedule == "plateau":
            self.scheduler.step(bleu)
        lr = self.optimizer.param_groups[0]["lr"]
        epochs = self.epochs()
        st.history.append({"step": st.step, "epochs": round(epochs, 3), "dev_bleu": bleu,
                           "lr": lr, "train_seconds": round(st.train_seconds, 1)})
        if self.cfg.train.keep_checkpoints > 0 and self.dist.is_main:
            self.save_numbered()
        if score:
            self.log(f"validation: step {st.step} epochs {epochs:.2f} dev {score.text} "
                     f"({score.signature}){' *best*' if improved else ''} lr {lr:.2e}")
        self.record("validation", dev_bleu=bleu, best=improved)
        st.early_stop = resume.early_stop_after(self.cfg.train, st.bad_validations)
        self.stop_cost = broadcast_float(time.perf_counter() - start, self.dist, self.device)
        self.fix_horizon(at_validation=True)
        return bleu

    def fix_horizon(self, at_validation: bool = False) -> None:
        """The linear LR schedule's horizon (`nmt.training.schedule`): from the step and
        epoch budgets when the first epoch begins; with `max_time`, at the end of every
        validation, from the rate measured since the first update."""
        tc, st = self.cfg.train, self.state
        if tc.lr_schedule != "linear" or (st.lr_horizon is not None and tc.max_time is None):
            return
        limits = [budget_horizon(tc, -(-self.epoch_len // tc.update_freq))]
        if tc.max_time is not None:
            if not at_validation:
                return
            assert st.loop_start is not None
            limits.append(time_horizon(tc, st.step, self.elapsed(), st.loop_start))
        before, st.lr_horizon = st.lr_horizon, min(h for h in limits if h)  # one is known
        if before is None or abs(st.lr_horizon - before) > 0.02 * before:
            self.log(f"lr schedule: linear from {tc.lr:g} at update 1 to 0 at update "
                     f"{st.lr_horizon} (floor {tc.min_lr:g})")

    def set_lr(self) -> None:
        """The linear schedule's LR for the coming update (the plateau schedule sets it at
        validations, and the linear one holds `lr` until its horizon is fixed)."""
        st = self.state
        if st.lr_horizon is not None:
            lr = linear_lr(self.cfg.train, st.step + 1, st.lr_horizon)
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def evaluate_at_stop(self) -> None:
        """Dev BLEU of the weights a budget stopped at, between scheduled validations.

        It is a report, not a validation: the LR schedule, early stopping, numbered
        checkpoints and history are left as they were, so raising the budget and resuming is
        the same run as one longer run. Only best.pt takes these weights if they beat it.
        """
        score, texts = self.dev_bleu()
        bleu = broadcast_float(score.value if score else 0.0, self.dist, self.device)
        if score:
            self.log(f"evaluation at the stop (the schedule is unchanged): step "
                     f"{self.state.step} dev {score.text} ({score.signature})"
                     f"{' *best*' if bleu > self.state.best_bleu else ''}")
        self.record("stop", dev_bleu=bleu)
        self.keep_if_best(bleu, texts)

    def keep_if_best(self, bleu: float, texts: list[str]) -> None:
        """best.pt and dev.best.hyp take the current weights if `bleu` beats them."""
        st = self.state
        if bleu <= st.best_bleu:
            return
        st.best_bleu, st.best_step = bleu, st.step
        if self.dist.is_main:
            checkpoint.save({"model": self.model.state_dict(), "config": self.cfg.to_dict(),
                             "train_state": {"step": st.step, "dev_bleu": bleu}},
                            self.model_dir / "best.pt")
            with atomic_open(self.model_dir / "dev.best.hyp") as f:
                f.write("".join(t + "\n" for t in texts))

    def budget_left(self) -> str:
        """Why training must stop now ('' if it can go on). A time budget keeps back what
        the last validation and checkpoint took, so the stop's own ones fit inside it."""
        st = self.state
        return resume.stop_reason(self.cfg.train, st.step, st.epoch,
                                  st.train_seconds + self.stop_cost, st.early_stop)

    # ------------------------------------------------------------------ loop

    def run(self, stop_at_step: int | None = None) -> TrainState:
        """Train until a budget ends it (or `stop_at_step`, as if the process were killed there).

        Ctrl-C (SIGINT) stops cleanly after the current step and saves `last.pt` first; a
        second Ctrl-C interrupts at once.
        """
        try:
            with interrupt_flag() as interrupted:
                return self._run(stop_at_step, interrupted)
        finally:
            if self.curves:
                self.curves.close()

    def _run(self, stop_at_step: int | None, interrupted: list[bool]) -> TrainState:
        st = self.state
        st.stopped = ""  # this run's reason is set when it ends
        if st.loop_start is None:
            st.loop_start = self.elapsed()
        self.model.train()
        while not self.budget_left():
            total = self.batches.epoch_len(st.epoch)
            self.epoch_len = -(-total // self.dist.world_size) if total else 0  # this rank's
            self.fix_horizon()
            specs = shard(self.batches.epoch(st.epoch), self.dist)
            specs = itertools.islice(specs, st.batch_in_epoch, None)  # resume inside the epoch
            with tqdm(total=self.epoch_len or None, initial=st.batch_in_epoch, unit="batch",
                      desc=f"epoch {st.epoch + 1}", disable=self.quiet or None, leave=False,
                      file=sys.stderr) as bar:
                ended = self._epoch(specs, bar, stop_at_step, interrupted)
            if ended is None:
                return st  # stop_at_step: as if the process had been killed here
            if ended:
                st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                if st.last_validated_step != st.step:
                    self.validate()
                self.save_last()
        if st.last_validated_step != st.step:
            self.evaluate_at_stop()
        st.stopped = self.budget_left()
        self.save_last()  # again: `stopped` is part of the state
        self.log(f"done: {st.stopped}; best dev BLEU {st.best_bleu:.2f} at step {st.best_step}; "
                 f"wall time {st.train_seconds:.0f} s")
        return st

    def _epoch(self, specs: Iterator, bar: tqdm, stop_at_step: int | None,
               interrupted: list[bool]) -> bool | None:
        """Updates until the epoch ends (True), a budget ends training (False) or
        `stop_at_step` is reached (None)."""
        tc, st = self.cfg.train, self.state
        window = [0.0, 0, time.perf_counter()]  # loss, tokens, start of the logging window
        while not self.budget_left():
            if stop_at_step is not None and st.step >= stop_at_step:
                return None
            if sum_int(int(interrupted[0]), self.dist, self.device):  # any rank: all stop
                self.save_last()
                message = (f"interrupted at step {st.step}; last.pt saved, continue with: "
                           f"nmt train --resume {self.model_dir}")
                self.log(message, echo=False)  # the command prints it as it exits
                raise Interrupted(message)
            group = list(itertools.islice(specs, tc.update_freq))
            if not group:
                return True
            self.set_lr()
            loss, n_tokens = self.train_update(group)
            st.train_seconds = self.elapsed()
            st.step, st.batch_in_epoch = st.step + 1, st.batch_in_epoch + len(group)
            st.target_tokens += n_tokens
            window[0], window[1] = window[0] + loss, window[1] + n_tokens
            bar.update(len(group))
            if st.step % tc.log_every == 0:
                self.log_progress(window, bar)
                window = [0.0, 0, time.perf_counter()]
            if st.step % tc.validate_every == 0:
                self.validate()
            if st.step % tc.checkpoint_every == 0 or st.step % tc.validate_every == 0:
                self.save_last()
            if len(group) < tc.update_freq:
                return True
        return False

    def log_progress(self, window: list, bar: tqdm) -> None:
        loss, tokens, start = window
        tok_s = tokens / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(loss=f"{loss / tokens:.3f}", tok_s=f"{tok_s:.0f}")
        self.log(f"step {self.state.step} epoch {self.state.epoch + 1} loss "
                 f"{loss / tokens:.4f} tokens/s {tok_s:.0f}")
        self.record("train", loss=round(loss / tokens, 5), tokens_per_s=round(tok_s, 1))


def exactness_conditions() -> dict:
    """What bit-exact resume depends on besides the checkpoint: the kernel switches that
    differ from their defaults (`nmt.cpu.switches`) and torch's thread count (sums split
    across threads round differently)."""
    return {"switches": switches.current().differences(), "threads": torch.get_num_threads()}


def _describe(conditions: dict) -> str:
    names = conditions.get("switches") or {}
    flags = " ".join(f"{k}={v}" for k, v in sorted(names.items())) or "default kernel switches"
    return f"{flags} and {conditions.get('threads')} thread(s)"


@contextlib.contextmanager
def interrupt_flag():
    """A one-element list set to True by the first SIGINT (main thread only)."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts at once

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def prepare_model_dir(cfg: Config, model_dir: Path, quiet: bool = False) -> Vocabs:
    """A fresh model directory: config.yaml and the subword models trained on the train split."""
    if (model_dir / "last.pt").exists():
        raise NmtError(f"{model_dir} already holds a training run; continue it with "
                       f"--resume {model_dir} or choose another --model-dir")
    model_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_config(cfg, model_dir)
    if cfg.data.streaming:  # a bounded sample: the first max_sentences pairs of the stream
        src, tgt = sample_texts(cfg.data, cfg.vocab.max_sentences)
    else:
        raw = load_split(cfg.data, cfg.data.train_split, cfg.data.max_train_pairs)
        src, tgt = raw["src"], raw["tgt"]
    if not quiet:
        print(f"training sentencepiece ({cfg.vocab.model_type}, {cfg.vocab.vocab_size}, "
              f"{'joint' if cfg.vocab.joint else 'separate'}) on {len(src):,} pairs",
              file=sys.stderr)
    return train_vocabs(src, tgt, model_dir, cfg.vocab, cfg.train.seed)
