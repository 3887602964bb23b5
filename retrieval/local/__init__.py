"""The local side: keypoints and descriptors (``features``, ``cnn_patches``) stored once per collection
(``store``), matched (``matching``) and verified (``verification``) to re-rank a global shortlist
(``rerank``), or quantised on visual words (``vocabulary``, ``codebook``) for local-only retrieval."""
