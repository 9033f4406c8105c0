"""Data: corpora through Hugging Face `datasets` (hub ids or local files, in memory or
streamed), sentencepiece vocabularies, cleaning, token-bucketed batches, the generated demo
corpus, and the mapping between subword pieces and words."""
