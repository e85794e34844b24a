"""How the CPUs a worker may use are shared between the model and its front end."""

from __future__ import annotations

from dataclasses import dataclass

from asrd.config import available_cpus


@dataclass(frozen=True)
class ThreadPlan:
    """How the CPUs this process may use are shared: model threads + front-end threads <= CPUs."""

    model_threads: int
    frontend_threads: int

    @classmethod
    def for_device(cls, device: str, cpus: int | None = None, model_threads: int = 0) -> ThreadPlan:
        """``model_threads`` 0 means choose. Measured on 2 cores: decode + VAD run at ~500x realtime
        per core, 1-2% of the model's time on CPU, while taking a core from the model costs ~40%
        and a third thread on two cores stalls the model's OpenMP barriers (research/performance.md:
        oversubscription made it 60x slower). So small CPU boxes run the front end inline between
        batches; from 4 CPUs one core is worth it. On a GPU the model needs few CPU threads and the
        front end is the limit, so it gets the rest."""
        cpus = cpus or available_cpus()
        if device == "cpu":
            threads = model_threads or (cpus if cpus < 4 else cpus - 1)
            return cls(threads, max(0, min(cpus - threads, 1)))
        threads = model_threads or (1 if cpus < 8 else 2)
        return cls(threads, max(0, cpus - threads))
