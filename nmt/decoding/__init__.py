"""Decoding: greedy and beam search over the model's `encode`/`decode_step`/`reorder_state`,
their scoring processors, target-vocabulary shortlists, UNK replacement, and the translator
(text in, text out)."""
