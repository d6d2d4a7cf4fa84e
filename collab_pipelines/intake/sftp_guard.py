"""Failed SFTP logins, counted per address: slowed after a few, then refused for a while.

Modelled on SFTPGo's defender. Every failure is logged with the address and the user name
offered, and a ban is logged once when it starts, so an operator sees an attack in the log.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from collab_pipelines.intake.sftp_accounts import LoginLimits

log = logging.getLogger("collab_pipelines.intake.sftp")


class LoginGuard:
    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic):
        self.limits, self.clock = limits, clock
        self._failures: dict[str, deque[float]] = {}
        self._banned_until: dict[str, float] = {}

    def banned_for(self, address: str) -> float:
        """Seconds the address is still refused (0 if it is not)."""
        remaining = self._banned_until.get(address, 0) - self.clock()
        if remaining <= 0:
            self._banned_until.pop(address, None)
            return 0
        return remaining

    def failed(self, address: str, username: str) -> float:
        """Record a failed login; returns the extra delay its answer should carry."""
        now = self.clock()
        window = self._failures.setdefault(address, deque())
        window.append(now)
        while window and window[0] < now - self.limits.window_seconds:
            window.popleft()
        count = len(window)
        log.warning(
            "SFTP login failed for user %r from %s (%d in %.0f s)",
            username,
            address,
            count,
            self.limits.window_seconds,
        )
        if count >= self.limits.ban_after and not self.banned_for(address):
            self._banned_until[address] = now + self.limits.ban_seconds
            log.error(
                "SFTP logins from %s refused for %.0f s after %d failures",
                address,
                self.limits.ban_seconds,
                count,
            )
        self._forget_stale(now)
        return max(0, count - self.limits.slow_after) * self.limits.delay_seconds

    def _forget_stale(self, now: float) -> None:
        # Bounded memory under a spray of addresses: drop windows with nothing recent in them.
        if len(self._failures) > 10_000:
            stale = [
                a for a, w in self._failures.items() if not w or w[-1] < now - self.limits.window_seconds
            ]
            for address in stale:
                del self._failures[address]
