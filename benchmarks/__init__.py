"""Speed and scale measurements, one script per hot path; each prints its figures and writes them to
``benchmarks/results/<name>.{json,md}``."""
