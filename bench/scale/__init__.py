"""Scale benchmark: the workflow steps over 100k-1M synthetic images (see docs/benchmarks.md)."""
