"""nmt: attention LSTM neural machine translation."""

__version__ = "0.1.0"
