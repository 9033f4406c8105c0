"""Gradient accumulation, device and mixed-precision choices (CPU-testable parts)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nmt.errors import NmtError
from nmt.training.device import grad_scaler, resolve_amp, resolve_device
from nmt.training.trainer import Trainer, prepare_model_dir
from tests.helpers import toy_config, write_toy_corpus


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    corpus = write_toy_corpus(tmp_path_factory.mktemp("toy"))
    cfg = toy_config(corpus)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.0))
    model_dir = tmp_path_factory.mktemp("run")
    return cfg, model_dir, prepare_model_dir(cfg, model_dir, quiet=True)


def trainer(prepared, **train) -> Trainer:
    cfg, model_dir, vocabs = prepared
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))
    return Trainer(cfg, model_dir, vocabs, quiet=True)


def test_accumulated_update_equals_one_big_batch(prepared):
    a, b = trainer(prepared), trainer(prepared)
    for t in (a, b):  # plain SGD: the weight change is the gradient itself (Adam's first step
        # is lr * sign(g), which turns rounding noise in near-zero gradients into 2 * lr)
        t.optimizer = torch.optim.SGD(t.model.parameters(), lr=1.0)
    first, second = a.batches.epoch_batches(0)[:2]
    loss_a, tokens_a = a.train_update([first, second])  # two batches, one update
    loss_b, tokens_b = b.train_update([first + second])  # one batch holding both
    assert tokens_a == tokens_b
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), name


def test_update_freq_consumes_batches_in_groups(prepared):
    t = trainer(prepared, update_freq=3, max_steps=2, validate_every=100, checkpoint_every=100)
    state = t.run()
    assert state.step == 2 and state.batch_in_epoch == 6


def test_bf16_autocast_on_cpu_trains_fp32_weights(prepared):
    t = trainer(prepared, amp="bf16", device="cpu")
    assert t.amp is torch.bfloat16 and t.scaler is None
    before = [p.detach().clone() for p in t.model.parameters()]
    loss, _ = t.train_update([t.batches.epoch_batches(0)[0]])
    assert loss > 0 and all(p.dtype == torch.float32 for p in t.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(t.model.parameters(), before, strict=True))


def test_device_and_amp_choices():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu and resolve_amp("auto", cpu) is None
    assert resolve_amp("none", cpu) is None and resolve_amp("bf16", cpu) is torch.bfloat16
    assert grad_scaler(cpu, torch.bfloat16) is None
    with pytest.raises(NmtError, match="fp16 needs a CUDA device"):
        resolve_amp("fp16", cpu)
    with pytest.raises(NmtError, match="train.device"):
        resolve_device("tpu:9")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(NmtError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_keeps_onednn_only_where_the_cpu_runs_bf16(prepared, monkeypatch, native):
    """oneDNN stays on under bf16 autocast where the CPU has native bf16 (its bf16 products
    are the point), and is switched off elsewhere (its LSTM rejects bf16 there)."""
    from nmt.training import device

    real = device.native_cpu_bf16()
    monkeypatch.setattr(device, "native_cpu_bf16", lambda: native)
    with device.autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.backends.mkldnn.enabled == native
        assert torch.is_autocast_enabled("cpu")
    assert torch.backends.mkldnn.enabled
    if native and not real:
        return  # this CPU's oneDNN cannot run the bf16 LSTM: nothing more to train here
    t = trainer(prepared, amp="bf16", device="cpu")
    loss, _ = t.train_update([t.batches.epoch_batches(0)[0]])
    assert loss > 0 and all(p.dtype == torch.float32 for p in t.model.parameters())
