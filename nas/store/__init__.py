"""The store layer: one database (SQLite file or PostgreSQL URL), the `nas_` tables, runs and blobs.

Owns connections, sessions and their error mapping, and the rows that keep runs, teachers and
weights; `claims` makes "who trains this genome" atomic across processes and machines. May
import `nas.model` and the base modules; knows nothing of training or Optuna trials (a claim
keeps a trial number as an opaque integer).
"""
