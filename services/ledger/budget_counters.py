"""Budget counters: what each budget period has spent and has reserved.

A period is named by a counter key (`<budget id>:<period key>`). Admission
reserves a call's most possible cost on every key that applies, atomically:
either every hard cap still holds with the amount added, or nothing is
reserved. The call's usage entry settles it: the reservation is released and
the actual cost added to `spent`. A reservation whose entry never comes (the
router died) expires after its TTL.

Two backends with one interface:
- `MemoryCounters` (default): in the ledger process. Admission runs on one
  event loop and never awaits between check and add, so reservations from
  any number of routers are serialized without a lock.
- `RedisCounters` (`LOCKGATE_LEDGER_REDIS_URL`): shared by every ledger
  replica; check-and-add is one Lua script, so it is atomic in Redis too.

`spent` is a cache of the ledger's entries: BudgetBook seeds it from the
database when a period is first used and reconciles it periodically.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Protocol

from lockgate.errors import ServiceUnavailable

#: Bound on reservations held at once (calls in flight with a budget).
MAX_RESERVATIONS = 200_000


@dataclass(frozen=True, slots=True)
class Hold:
    """One budget period a call's reservation counts against."""

    key: str
    #: The amount for hard budgets; None for soft ones (counted, never refused).
    cap: int | None


@dataclass(frozen=True, slots=True)
class Level:
    spent: int
    reserved: int


class BudgetCounters(Protocol):
    async def reserve(self, request_id: str, holds: list[Hold], amount: int,
                      ttl_seconds: float) -> str | None:
        """Reserve `amount` on every hold, or on none: returns the key of the first
        hard cap it would break (None: reserved). Reserving a request id twice is a
        no-op (an Admit retried after a timeout)."""

    async def reserve_each(self, ids: list[str], holds: list[Hold], amount: int,
                           ttl_seconds: float) -> int:
        """`reserve` for each id in turn (admission tickets), stopping at the first
        that does not fit; returns how many were reserved."""

    async def settle(self, request_id: str, costs: list[tuple[str, int]]) -> dict[str, Level]:
        """Release the request's reservation and add each cost to its key's spend;
        returns the new levels of those keys."""

    async def level(self, key: str) -> Level | None:
        """A key's spend and reservations; None when it was never seeded."""

    async def seed(self, key: str, spent: int) -> None:
        """Set a key's spend (from the database)."""

    async def retain(self, keys: set[str]) -> None:
        """Drop every key but these (past periods, deleted budgets)."""

    async def close(self) -> None: ...


class MemoryCounters:
    def __init__(self, clock=time.monotonic, max_reservations: int = MAX_RESERVATIONS):
        self.clock = clock
        self.max_reservations = max_reservations
        self.spent: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        #: request id -> (keys, amount, expires at)
        self.holds: dict[str, tuple[tuple[str, ...], int, float]] = {}
        self._expiry: list[tuple[float, str]] = []

    def _expire(self) -> None:
        now = self.clock()
        while self._expiry and self._expiry[0][0] <= now:
            expires, request_id = heapq.heappop(self._expiry)
            hold = self.holds.get(request_id)
            if hold is not None and hold[2] == expires:
                self._release(request_id)

    def _release(self, request_id: str) -> None:
        keys, amount, _ = self.holds.pop(request_id)
        for key in keys:
            left = self.reserved.get(key, 0) - amount
            if left > 0:
                self.reserved[key] = left
            else:
                self.reserved.pop(key, None)

    async def reserve(self, request_id: str, holds: list[Hold], amount: int,
                      ttl_seconds: float) -> str | None:
        # No await from here to the end: the check and the add are one step.
        self._expire()
        if request_id in self.holds:
            return None
        if len(self.holds) >= self.max_reservations:
            raise ServiceUnavailable("too many budgeted calls in flight; try again shortly")
        for hold in holds:
            if hold.cap is None:
                continue
            used = self.spent.get(hold.key, 0) + self.reserved.get(hold.key, 0)
            if used + amount > hold.cap:
                return hold.key
        expires = self.clock() + ttl_seconds
        keys = tuple(h.key for h in holds)
        for key in keys:
            self.reserved[key] = self.reserved.get(key, 0) + amount
        self.holds[request_id] = (keys, amount, expires)
        heapq.heappush(self._expiry, (expires, request_id))
        return None

    async def reserve_each(self, ids: list[str], holds: list[Hold], amount: int,
                           ttl_seconds: float) -> int:
        for reserved, request_id in enumerate(ids):
            if await self.reserve(request_id, holds, amount, ttl_seconds) is not None:
                return reserved
        return len(ids)

    def _compact(self) -> None:
        """Drop the expiry entries of settled holds once they outnumber the live
        ones. Settling cannot take an entry out of the heap, and it would stay
        until its hold's TTL (the call's deadline plus a minute): at a thousand
        calls a second, most of a million entries, about 150 MB."""
        if len(self._expiry) > 2 * len(self.holds) + 1024:
            self._expiry = [(hold[2], request_id) for request_id, hold in self.holds.items()]
            heapq.heapify(self._expiry)

    async def settle(self, request_id: str, costs: list[tuple[str, int]]) -> dict[str, Level]:
        if request_id in self.holds:
            self._release(request_id)
            self._compact()
        out = {}
        for key, cost in costs:
            if key in self.spent:  # unseeded keys get their spend from the database
                self.spent[key] += cost
                out[key] = Level(self.spent[key], self.reserved.get(key, 0))
        return out

    async def level(self, key: str) -> Level | None:
        self._expire()
        if key not in self.spent:
            return None
        return Level(self.spent[key], self.reserved.get(key, 0))

    async def seed(self, key: str, spent: int) -> None:
        self.spent[key] = spent

    async def retain(self, keys: set[str]) -> None:
        for key in set(self.spent) - keys:
            del self.spent[key]

    async def close(self) -> None:
        pass


# KEYS: the counter hashes. ARGV: amount, now ms, expires ms, ttl ms, the number
# of caps (= #KEYS), one cap per key (-1: soft), then the request ids to reserve
# for (one for a call; several for admission tickets). Each hash has fields
# spent and reserved; its holds are a hash (<key>:holds, request id -> amount)
# and a sorted set by expiry (<key>:exp). A request's own record (hold:<request
# id>) lists its keys. Expired holds are dropped first. The ids are reserved in
# order until one does not fit; an id already held counts as reserved (an Admit
# retried after a timeout). Returns {how many were reserved, the index of the
# key whose cap the next one would break (0: none)}.
_RESERVE = """
local amount, now, expires, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local ncaps = tonumber(ARGV[5])
for _, k in ipairs(KEYS) do
  local gone = redis.call('ZRANGEBYSCORE', k .. ':exp', '-inf', now)
  for _, old in ipairs(gone) do
    local a = redis.call('HGET', k .. ':holds', old)
    if a then
      redis.call('HINCRBY', k, 'reserved', -tonumber(a))
      redis.call('HDEL', k .. ':holds', old)
    end
  end
  redis.call('ZREMRANGEBYSCORE', k .. ':exp', '-inf', now)
end
local reserved = 0
for j = 6 + ncaps, #ARGV do
  local rid = ARGV[j]
  local record = 'lockgate:budget:hold:' .. rid
  if redis.call('EXISTS', record) == 0 then
    for i, k in ipairs(KEYS) do
      local cap = tonumber(ARGV[5 + i])
      if cap >= 0 then
        local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
        local held = tonumber(redis.call('HGET', k, 'reserved') or '0')
        if spent + held + amount > cap then return {reserved, i} end
      end
    end
    for _, k in ipairs(KEYS) do
      redis.call('HINCRBY', k, 'reserved', amount)
      redis.call('HSET', k .. ':holds', rid, amount)
      redis.call('ZADD', k .. ':exp', expires, rid)
    end
    redis.call('SET', record, table.concat(KEYS, ' '), 'PX', ttl)
  end
  reserved = reserved + 1
end
return {reserved, 0}
"""

# KEYS: the hashes to add cost to. ARGV: request id, then one cost per key.
_SETTLE = """
local record = 'lockgate:budget:hold:' .. ARGV[1]
local held = redis.call('GET', record)
if held then
  for k in string.gmatch(held, '%S+') do
    local a = redis.call('HGET', k .. ':holds', ARGV[1])
    if a then
      redis.call('HINCRBY', k, 'reserved', -tonumber(a))
      redis.call('HDEL', k .. ':holds', ARGV[1])
      redis.call('ZREM', k .. ':exp', ARGV[1])
    end
  end
  redis.call('DEL', record)
end
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('HEXISTS', k, 'spent') == 1 then
    out[#out + 1] = redis.call('HINCRBY', k, 'spent', tonumber(ARGV[1 + i]))
    out[#out + 1] = tonumber(redis.call('HGET', k, 'reserved') or '0')
  else
    out[#out + 1] = -1
    out[#out + 1] = 0
  end
end
return out
"""

#: Counter hashes outlive their period by this long (then Redis drops them).
_KEY_TTL_MS = 40 * 86_400_000


class RedisCounters:
    """Counters shared by every ledger replica through one Redis."""

    def __init__(self, url: str, prefix: str = "lockgate:budget:"):
        import redis.asyncio as redis

        self.redis = redis.from_url(url)
        self.prefix = prefix
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def reserve(self, request_id: str, holds: list[Hold], amount: int,
                      ttl_seconds: float) -> str | None:
        _, refused = await self._run_reserve([request_id], holds, amount, ttl_seconds)
        return None if refused == 0 else holds[refused - 1].key

    async def reserve_each(self, ids: list[str], holds: list[Hold], amount: int,
                           ttl_seconds: float) -> int:
        reserved, _ = await self._run_reserve(ids, holds, amount, ttl_seconds)
        return reserved

    async def _run_reserve(self, ids: list[str], holds: list[Hold], amount: int,
                           ttl_seconds: float) -> tuple[int, int]:
        """(how many of `ids` were reserved, 1 + the index of the hold whose cap
        stopped them, 0: none did)."""
        if not holds or not ids:
            return len(ids), 0
        now = int(time.time() * 1000)
        ttl = max(1, int(ttl_seconds * 1000))
        caps = [-1 if h.cap is None else h.cap for h in holds]
        try:
            reserved, refused = await self._reserve(
                keys=[self._k(h.key) for h in holds],
                args=[amount, now, now + ttl, ttl, len(caps), *caps, *ids],
            )
            if int(reserved):
                await self._keep_alive(holds)
        except Exception as exc:  # redis.RedisError, OSError: the counters are out of reach
            raise ServiceUnavailable("the budget counters (Redis) are unreachable") from exc
        return int(reserved), int(refused)

    async def _keep_alive(self, holds: list[Hold]) -> None:
        """Hashes live past their period; expiring them bounds Redis memory."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for h in holds:
                for suffix in ("", ":holds", ":exp"):
                    pipe.pexpire(self._k(h.key) + suffix, _KEY_TTL_MS)
            await pipe.execute()

    async def settle(self, request_id: str, costs: list[tuple[str, int]]) -> dict[str, Level]:
        raw = await self._settle(
            keys=[self._k(k) for k, _ in costs], args=[request_id, *(c for _, c in costs)]
        )
        out = {}
        for i, (key, _) in enumerate(costs):
            spent, reserved = int(raw[2 * i]), int(raw[2 * i + 1])
            if spent >= 0:
                out[key] = Level(spent, reserved)
        return out

    async def level(self, key: str) -> Level | None:
        values = await self.redis.hmget(self._k(key), "spent", "reserved")
        if values[0] is None:
            return None
        return Level(int(values[0]), int(values[1] or 0))

    async def seed(self, key: str, spent: int) -> None:
        await self.redis.hset(self._k(key), "spent", spent)
        await self.redis.pexpire(self._k(key), _KEY_TTL_MS)

    async def retain(self, keys: set[str]) -> None:
        pass  # the hashes expire on their own; another replica may still use them

    async def close(self) -> None:
        await self.redis.aclose()
