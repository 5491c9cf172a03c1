"""Tests of nas.study: search, workers and jobs, rungs, report, export, ablations, Optuna tools."""
