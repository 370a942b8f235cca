"""Hashing, atomic file writes, errors and subprocess helpers shared by every layer."""
