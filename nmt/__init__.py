"""nmt: attention LSTM neural machine translation.

`from nmt import Translator` is the Python API (`nmt.api`); it is imported on first use, so
`import nmt` alone stays light.
"""

__version__ = "0.1.0"

__all__ = ["Translator", "__version__"]


def __getattr__(name: str):
    if name == "Translator":
        from nmt.api import Translator

        return Translator
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
