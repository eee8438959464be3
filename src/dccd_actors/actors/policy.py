"""Restart arithmetic: exponential backoff with jitter, intensity, reset. No threads, no clocks."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from dccd_actors.config import RestartPolicy

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Per-child restart bookkeeping; times are monotonic seconds passed in by the caller.

    Example::

        >>> b = Backoff(RestartPolicy(min_backoff=1, max_backoff=8, jitter=0), random.Random(0))
        >>> [b.next_delay(now=t) for t in (0, 1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 8.0, 8.0]
    """

    policy: RestartPolicy
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    failures: deque[float] = field(default_factory=deque)
    healthy_since: float | None = None

    def next_delay(self, now: float) -> float:
        """Record a failure at ``now`` and return the delay before the next start."""
        self.failures.append(now)
        base = min(self.policy.min_backoff * 2**self.attempt, self.policy.max_backoff)
        self.attempt += 1
        self.healthy_since = None
        return float(base * (1.0 + self.rng.uniform(0.0, self.policy.jitter)))

    def exceeded(self, now: float) -> bool:
        """More than ``max_restarts`` failures within ``restart_window``: park the child."""
        while self.failures and now - self.failures[0] > self.policy.restart_window:
            self.failures.popleft()
        return len(self.failures) > self.policy.max_restarts

    def healthy(self, now: float) -> bool:
        """Note data flowing at ``now``; True once healthy long enough to reset the backoff."""
        if self.healthy_since is None:
            self.healthy_since = now
        if now - self.healthy_since >= self.policy.reset_after and self.attempt:
            self.attempt = 0
            return True
        return False
