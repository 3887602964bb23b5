"""The global descriptor: one L2-normalised vector per image, from a timm backbone with GeM pooling
(``network``, ``weights``, ``pooling``), trained with metric losses on mined tuples (``losses``, ``mining``),
extracted multi-scale (``extract``), post-processed (``whitening``, ``query_expansion``) and searched in a
faiss index (``index``)."""
