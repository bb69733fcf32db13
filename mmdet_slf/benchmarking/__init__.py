# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Tools to compare weighting strategies: paired statistics and saved runs."""
from .stats import paired_comparison, summarize

__all__ = ['paired_comparison', 'summarize']
