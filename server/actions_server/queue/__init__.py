"""Jobs, events and their delivery: the store, the worker, retry policy, ctx facades."""
