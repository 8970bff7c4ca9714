"""The REST API at /v1: Letta's routes, as Letta's own client uses them, and Engram's own (`app.py` builds it)."""
