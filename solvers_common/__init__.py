"""Shared library of learnopt-bench."""
