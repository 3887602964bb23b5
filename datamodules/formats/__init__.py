"""Readers of the real file formats, no Lightning: GLDv2 training and retrieval (``gldv2``), Revisited
Oxford/Paris with R1M (``revisited``), a folder of landmarks and the shared real photos (``folders``), and the
benchmarks by name (``sources``). Readers never decode images; they check that every listed file exists and fail
with a count and examples otherwise, because a benchmark with silently missing images gives numbers that look
valid and are not."""
