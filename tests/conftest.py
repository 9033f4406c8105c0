"""Shared test setup: no network, and Hugging Face caches in a throwaway folder.

The environment is set before anything imports `datasets` or `huggingface_hub` (they read it
at import time), so an unknown hub id fails at once instead of waiting on the network, and no
test reads or writes the user's ~/.cache/huggingface.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import torch

_HF_TMP = tempfile.mkdtemp(prefix="nmt-tests-hf-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = os.path.join(_HF_TMP, "home")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_HF_TMP, "datasets")


# Tests use tiny models: one thread avoids OpenMP oversubscription, which on a busy 2-core
# machine makes small ops many times slower.
torch.set_num_threads(1)


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_HF_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_switches():
    """Every test reads the kernel switches from its own environment (see
    `tests.helpers.set_switch`)."""
    from nmt.cpu import switches

    switches.reset()
    yield
    switches.reset()
