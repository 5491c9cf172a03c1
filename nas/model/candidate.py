"""A genome about to be judged, and what the objectives measured before training read of it
(nas.model.objectives): its count (FLOPs, params) and its timed latency, each made once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from nas.model.complexity import Complexity, count
from nas.model.genome import Genome
from nas.model.space import InputShape, Space


@dataclass(frozen=True)
class Candidate:
    """A genome at the study's input shape and class count."""

    genome: Genome
    space: Space
    shape: InputShape
    classes: int

    @cached_property
    def size(self) -> Complexity:
        return count(self.genome, self.space, shape=self.shape, classes=self.classes)

    @cached_property
    def latency_ms(self) -> float:
        """Median milliseconds per image at batch 1 on this CPU (torch imported on first use)."""
        from nas.model.latency import time_genome

        return time_genome(self.genome, self.space, self.shape, self.classes).ms
