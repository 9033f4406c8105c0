"""Training: the loop (validation, early stopping, exact resume), devices and precision,
and multi-process training with DDP."""
