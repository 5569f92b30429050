"""Manifest files: their format, loading with line numbers, and the specs they become."""
