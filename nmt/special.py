"""The special-token ids, fixed for every vocabulary (`nmt.data.vocab` trains sentencepiece
models with them). A module of its own, without dependencies, so that the model reads the
padding id without importing the vocabulary code."""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
