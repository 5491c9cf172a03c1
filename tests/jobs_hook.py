"""Imported by each `nas search --jobs` worker in the tests (NAS_WORKER_HOOK=tests.jobs_hook):
replaces the trial's training with tests/fake_training.py's.
"""

from nas.study.search import loop
from tests.fake_training import fake_train_genome

loop.train_genome = fake_train_genome
