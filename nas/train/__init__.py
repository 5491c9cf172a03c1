"""The training layer: losses and the distillation loop, the teacher, the experiment context and
its preflight (the data and memory checks of every command that trains).

Trains one student (or the teacher) from a prepared context and stores the run. The loop reports
through callbacks and knows nothing of the terminal. May import `nas.model`, `nas.data`,
`nas.store` and the base modules.
"""
