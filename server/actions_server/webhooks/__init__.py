"""Webhook triggers: requests from another service, verified on their raw bytes
before anything else looks at them (`verify.py`, pure), and kept idempotent by
delivery id (receipts written with the run)."""
