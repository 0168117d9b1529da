"""Finished results and runs in progress shared by every app replica through Redis (NORMVIZ_REDIS_URL).

    normviz:result:<key>     the final result, encoded (arrays and JSON, persist.encode; never a pickle)
    normviz:lease:<key>      the replica training the run; it renews the lease while the run is queued or running
    normviz:partial:<key>    its newest partial result, encoded
    normviz:watchers:<key>   replicas whose sessions follow the run, each with the time of its last sign of life
    normviz:error:<key>      why the run failed, for a while

A replica that finds a lease follows the run through Redis instead of training it, so two replicas asked
for the same new Spec train it once; a replica that finds the lease gone and no result takes the run over.
The owner cancels a run only when no session follows it on any replica. Every call is short (2 s
timeouts); when Redis cannot be reached, the first failure is logged once, every call answers as if no other
replica existed (each replica keeps its own memory and disk stores), and Redis is tried again every 10 s.
Only normviz.service imports this module, and only when the variable is set.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis

log = logging.getLogger(__name__)

PREFIX = "normviz:"
LEASE_MS = 5000  # a replica that stops renewing (it died) loses its runs to another replica within 5 s
WATCH_SECONDS = 3.0  # a replica renews its interest in a run every sync (0.25 s); silent for 3 s, it has gone
PARTIAL_MS = 30_000
ERROR_MS = 30_000
RESULT_SECONDS = 7 * 24 * 3600  # Redis evicts by its own policy too (maxmemory-policy allkeys-lru in deploy/)
TIMEOUT = 2.0  # a loaded machine answered slower than 0.5 s; Redis that stopped refuses at once
RETRY_SECONDS = 10.0

# renew or drop a lease only while this replica holds it
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_DROP = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class SharedRuns:
    """This replica's view of the runs in Redis; see the module docstring."""

    def __init__(self, url: str):
        self.url, self.replica = url, uuid.uuid4().hex
        self._client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        self._renew, self._drop = self._client.register_script(_RENEW), self._client.register_script(_DROP)
        self._lock = threading.Lock()
        self._down_until, self._down = 0.0, False

    def __repr__(self):
        return f"SharedRuns({self.url!r}, {'down' if self._down else 'up'})"

    def _call(self, action, fallback):
        """action(client), or `fallback` while Redis cannot be reached (said once in the log per outage)."""
        if time.monotonic() < self._down_until:
            return fallback
        try:
            value = action(self._client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + RETRY_SECONDS
                if not self._down:
                    log.warning("Redis at %s is unreachable (%s); this replica uses its local store", self.url, exc)
                self._down = True
            return fallback
        if self._down:
            with self._lock:
                self._down = False
            log.warning("Redis at %s is reachable again; results are shared again", self.url)
        return value

    @property
    def up(self) -> bool:
        return not self._down

    def result(self, key: str) -> bytes | None:
        return self._call(lambda r: r.get(f"{PREFIX}result:{key}"), None)

    def finish(self, key: str, encoded: bytes) -> None:
        """Store the final result and end the run's lease."""

        def action(r):
            with r.pipeline() as pipe:
                pipe.set(f"{PREFIX}result:{key}", encoded, ex=RESULT_SECONDS)
                pipe.delete(f"{PREFIX}partial:{key}", f"{PREFIX}error:{key}")
                pipe.execute()
            self._drop(keys=[f"{PREFIX}lease:{key}"], args=[self.replica])

        self._call(action, None)

    def fail(self, key: str, message: str) -> None:
        def action(r):
            r.set(f"{PREFIX}error:{key}", message, px=ERROR_MS)
            self._drop(keys=[f"{PREFIX}lease:{key}"], args=[self.replica])

        self._call(action, None)

    def claim(self, key: str) -> bool:
        """This replica trains the run unless another one holds its lease (True while Redis is down)."""
        return bool(self._call(lambda r: r.set(f"{PREFIX}lease:{key}", self.replica, nx=True, px=LEASE_MS), True))

    def drop(self, key: str) -> None:
        """End this replica's lease without a result (its run was cancelled)."""
        self._call(lambda r: self._drop(keys=[f"{PREFIX}lease:{key}"], args=[self.replica]), None)

    def renew(self, keys: list[str], partials: dict[str, bytes]) -> None:
        """Renew the leases of this replica's runs and publish their newest partial results."""
        if not keys:
            return

        def action(r):
            for key in keys:
                self._renew(keys=[f"{PREFIX}lease:{key}"], args=[self.replica, LEASE_MS])
            if partials:
                with r.pipeline() as pipe:
                    for key, encoded in partials.items():
                        pipe.set(f"{PREFIX}partial:{key}", encoded, px=PARTIAL_MS)
                    pipe.execute()

        self._call(action, None)

    def follow(self, keys: list[str]) -> dict[str, tuple[bytes | None, bytes | None, bool, str | None]]:
        """Sessions of this replica follow these runs of other replicas: key -> (result, partial, leased, error).
        Empty while Redis is down."""
        if not keys:
            return {}

        def action(r):
            now = time.time()
            with r.pipeline() as pipe:
                for key in keys:
                    pipe.zadd(f"{PREFIX}watchers:{key}", {self.replica: now})
                    pipe.expire(f"{PREFIX}watchers:{key}", int(WATCH_SECONDS) + 1)
                    pipe.get(f"{PREFIX}result:{key}")
                    pipe.get(f"{PREFIX}partial:{key}")
                    pipe.exists(f"{PREFIX}lease:{key}")
                    pipe.get(f"{PREFIX}error:{key}")
                replies = pipe.execute()
            found = {}
            for i, key in enumerate(keys):
                result, partial, leased, error = replies[6 * i + 2 : 6 * i + 6]
                found[key] = (result, partial, bool(leased), error.decode() if error else None)
            return found

        return self._call(action, {})

    def watched_elsewhere(self, key: str) -> bool:
        """Does a session on another replica follow this run? (False while Redis is down.)"""

        def action(r):
            recent = r.zrangebyscore(f"{PREFIX}watchers:{key}", time.time() - WATCH_SECONDS, "+inf")
            return any(replica.decode() != self.replica for replica in recent)

        return self._call(action, False)
