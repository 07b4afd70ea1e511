"""Coordinator: admission, grouping, and driving each block through the pipeline."""
