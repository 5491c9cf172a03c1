"""The search: Optuna sampling, the budget gate, rungs, warm starts and the --jobs worker processes."""
