"""Benchmark and profiling tools (speed, BLEU, A/B of kernel switches, DDP, streaming
memory). The library never imports this package; `scripts/` and `nmt.cli` do."""
