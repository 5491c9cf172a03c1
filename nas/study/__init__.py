"""The study layer: the search, reports on finished studies, and ablations, one subpackage each.

    search/    Optuna sampling, the budget gate, rungs, warm starts, --jobs worker processes
    report/    a study read back: summary, tables, plot, export, reproduce, delete
    ablation/  ablation files, their runs, statistics and tables

The modules at this level are the base the three share: `pareto` (trials as rows, the front),
`formats` (output formats), `names` (study names), `storage_errors` (Optuna's errors in one line)
and `width` (tables that fit the terminal). The subpackages import this base and the layers below
(`nas.model`, `nas.data`, `nas.store`, `nas.train`), never each other and never the CLI.
"""
