"""Tests and helpers that run the service as real processes (see :mod:`tests.live.stack`)."""
