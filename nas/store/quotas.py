"""The number of genomes a search run has still to judge, taken one genome at a time.

A search worker takes one unit before each genome and keeps it until a genome is judged (trained,
or pruned at a rung); a sample that was reused, rejected or failed gives its unit to the next
sample. `Countdown` is one worker's own count. `SharedQuota` is one count for all the workers
of a `nas search --jobs N` run, a row of nas_quotas taken from with an atomic
`UPDATE ... SET remaining = remaining - 1 WHERE remaining > 0` (SQLite or PostgreSQL), so the
workers together judge exactly the run's --trials genomes, and a worker whose genomes train
fast judges more of them instead of waiting idle for the slowest worker's last trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from nas.store.runs import Store
from nas.store.tables import Quota as QuotaRow


@dataclass
class Countdown:
    """One worker's own quota of `remaining` genomes."""

    remaining: int

    def take(self) -> bool:
        """One unit, or False when none is left."""
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    def give_back(self) -> None:
        """Return a unit that judged no genome."""
        self.remaining += 1


@dataclass(frozen=True)
class SharedQuota:
    """The quota row `key` of nas_quotas, shared by every worker that names it."""

    store: Store
    key: str

    @classmethod
    def create(cls, store: Store, key: str, count: int) -> SharedQuota:
        with store.session() as session:
            session.add(QuotaRow(key=key, remaining=count, created=datetime.now(UTC)))
        return cls(store, key)

    def take(self) -> bool:
        """One unit, or False when none is left (or the row is gone)."""
        return self._add(-1, QuotaRow.remaining > 0) == 1

    def give_back(self) -> None:
        """Return a unit that judged no genome."""
        self._add(1)

    def remaining(self) -> int | None:
        """Units left; None when the row is gone."""
        with self.store.session() as session:
            return session.scalar(sa.select(QuotaRow.remaining).where(QuotaRow.key == self.key))

    def remove(self) -> None:
        """Delete the row once the run is over."""
        with self.store.session() as session:
            session.execute(sa.delete(QuotaRow).where(QuotaRow.key == self.key))

    def _add(self, delta: int, *where: sa.ColumnElement[bool]) -> int:
        """Add `delta` to the row in one statement; the number of rows changed (0 or 1)."""
        with self.store.session() as session:
            return session.execute(sa.update(QuotaRow).where(QuotaRow.key == self.key, *where)
                                   .values(remaining=QuotaRow.remaining + delta)).rowcount
