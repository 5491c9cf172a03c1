"""Tests of nas.data: sources, splits, views, caches, hostile folders."""
