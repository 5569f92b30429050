"""Runs and their log lines: recorded off the request path, read by the dashboard."""
