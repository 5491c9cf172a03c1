"""Ablations: the file of groups and arms, its runs, their statistics and tables."""
