"""Tests of nas.store: database, runs, claims, read-only opens, atomic writes under kill -9."""
