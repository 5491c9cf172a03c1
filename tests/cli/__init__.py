"""Tests of nas.cli: commands end to end, conventions, one-line errors."""
