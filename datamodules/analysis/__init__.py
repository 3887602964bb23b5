"""Dataset analysis of GLDv2-format training data (RQ1): per-image properties (``image_properties``), a
resumable parallel scan (``scan``), statistics (``statistics``), noisy-label candidates (``noisy_labels``) and
the flags-file contract (``flags``). ``experiments/analyze_dataset.py`` wires them into a report."""
