"""The study layer: search (Optuna sampling, budget gate, workers), Pareto fronts, ablations,
reports, their rendering, and export of a selected student.

May import every layer below it (`nas.model`, `nas.data`, `nas.store`, `nas.train`); never the CLI.
"""
