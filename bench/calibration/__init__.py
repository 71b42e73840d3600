"""Validity benchmark of the auto-label decision, replayed from kept run files."""
