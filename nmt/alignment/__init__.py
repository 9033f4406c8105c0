"""Word alignments from attention: extraction and subword-to-word merging, Pharaoh files and
AER, and the HTML/PNG report."""
