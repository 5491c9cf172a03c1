"""The store layer: one database (SQLite file or PostgreSQL URL), the `nas_` tables, runs and blobs.

Owns connections, sessions and their error mapping, and the rows that keep runs, teachers and
weights. May import `nas.model` and the base modules; knows nothing of training or Optuna trials.
"""
