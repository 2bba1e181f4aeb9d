"""Operator service (FastAPI). Not built yet: see issue 5."""
