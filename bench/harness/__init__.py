"""Shared pieces of the benchmarks (a package, so ``bench/run.py`` does not run it)."""
