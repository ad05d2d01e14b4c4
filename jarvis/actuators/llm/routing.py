"""The routing actuator: LLM traffic weights per route, kept in Redis.

Built by the composition root from `RoutingSettings`; the reconciler calls
`observe()` every tick and `apply()` for SET_WEIGHTS actions on
``route://<name>`` resources (kind "route"). Applications read the same
hashes through `jarvis.routing.client`.

Storage: one hash per route, ``<key_prefix><route>``, mapping model → weight
(decimal text) plus metadata fields that start with ``_``: ``_version`` (an
integer bumped by every write), ``_updated_at`` (ISO time) and
``_action_key`` (the idempotency key of the action that wrote the weights;
absent after seeding). Every write is one Lua script that first answers
"already applied" when the hash already carries the action's key (a replay,
or a retry after a write whose reply was lost), then compares ``_version``
with the version this actuator last observed and replaces the whole hash only
if they match, so a concurrent writer (another Jarvis, an operator) is never
silently overwritten: the apply fails as a temporary conflict and the next
tick decides again on fresh data. A route whose hash does not exist is seeded
with its configured weights. Since ``_action_key`` is written with the weights,
recovery asks `RoutingActuator.confirm_applied` (`ConfirmsKeys`) whether an
orphaned intent's key is the hash's, and closes the intent as applied when it is.
The script asks Redis's ACL about every command it sends before its first write,
so a user refused one (NOPERM) leaves the route as it was; that failure is
terminal and names the rule to grant (`acl_rule`).

Observed resource (`ResourceState`):
- ``health``: healthy when the weights parse and sum to 1; degraded otherwise.
- ``detail``: the weights and version, so every change is a `resource.changed`.
- ``weights`` (the facet): the weights {model: weight}, their ``version`` (int)
  and the configured ``floors``.
- ``attributes``: ``configured_weights``, ``models`` (allowed, in order),
  ``updated_at`` (ISO text or null), ``seeded`` (true on the tick that seeded it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, RedisError

from jarvis import redisacl
from jarvis.actuators.base import ActuatorError, Scope
from jarvis.config.cost import RouteSettings, RoutingSettings
from jarvis.model import (
    JSON,
    WEIGHT_TOLERANCE,
    Action,
    ActionKind,
    Clock,
    ErrorKind,
    Health,
    Outcome,
    ResourceRef,
    ResourceState,
    RouteWeights,
    SetWeights,
)

# KEYS[1]: the route hash. ARGV[1]: the version the writer last saw ("0" when
# the hash must not exist yet), ARGV[2]: updated-at text, ARGV[3]: the action's
# idempotency key ("" when seeding), ARGV[4..]: model, weight pairs. Returns
# {1, new version}, {0, version found} on a conflict, or {2, version found}
# when the hash already carries this key; a NOPERM error, before any write,
# when the ACL refuses the user a command the script would send.
#
# Redis checks the ACL at each call inside a script, and a script that fails
# keeps what it wrote: a user allowed DEL and refused HSET had the route
# deleted and never rewritten, so every application following it lost its
# weights. So the commands are asked about (`redis.acl_check_cmd`, Redis 7)
# exactly as they will be sent, before the first write. Nothing else can stop
# the script between its DEL and its HSET: Redis refuses a write for the
# server's state (OOM under maxmemory, a read-only replica, a failed save) only
# until the script's first write, and DEL on the hash's one key cannot fail.
_CAS_SCRIPT = """
local function refused(...)
  if not redis.acl_check_cmd then
    return nil  -- before Redis 7.0 a script cannot ask
  end
  local names, seen = {}, {}
  for _, command in ipairs({...}) do
    local name = command[1]
    if not seen[name] and not redis.acl_check_cmd(unpack(command)) then
      seen[name] = true
      names[#names + 1] = name
    end
  end
  if #names > 0 then
    return redis.error_reply(
      'NOPERM the ACL refuses ' .. table.concat(names, ', ') .. ' on ' .. KEYS[1])
  end
end
local denied = refused({'HGET', KEYS[1], '_version'}, {'HGET', KEYS[1], '_action_key'})
if denied then
  return denied
end
local found = redis.call('HGET', KEYS[1], '_version') or '0'
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], '_action_key') == ARGV[3] then
  return {2, found}
end
if found ~= ARGV[1] then
  return {0, found}
end
-- A hand-edited version that is no count restarts at 1, as the hash is replaced:
-- arithmetic on it failed the script, and the route could never be written again.
local count = tonumber(found)
if not count or count < 0 or count ~= math.floor(count) then
  count = 0
end
local version = tostring(count + 1)
local weights = {'HSET', KEYS[1], '_version', version, '_updated_at', ARGV[2], unpack(ARGV, 4)}
local stamp = {'HSET', KEYS[1], '_action_key', ARGV[3]}
if ARGV[3] == '' then
  denied = refused({'DEL', KEYS[1]}, weights)
else
  denied = refused({'DEL', KEYS[1]}, weights, stamp)
end
if denied then
  return denied
end
redis.call('DEL', KEYS[1])
redis.call(unpack(weights))
if ARGV[3] ~= '' then
  redis.call(unpack(stamp))
end
return {1, version}
"""
_WRITTEN, _CONFLICT, _ALREADY = 1, 0, 2
COMMANDS = ("hgetall", "hget", "evalsha", "script|load", "del", "hset")
"""What routing sends, the ACL rule's commands (`acl_rule`)."""


def format_weight(weight: float) -> str:
    """Weights as short decimal text: 0.3, not 0.30000000000000004."""
    return f"{weight:.6f}".rstrip("0").rstrip(".") or "0"


class RoutingActuator:
    """Observes and sets LLM route weights in Redis (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, settings: RoutingSettings, *, clock: Clock) -> None:
        self._redis = client
        self._settings = settings
        self._clock = clock
        self._script = client.register_script(_CAS_SCRIPT)
        self._seen_versions: dict[str, str] = {}
        # The weights read with each seen version: the write replaces them only
        # while that version stands, so a model leaving the route is judged
        # against the weight it really has.
        self._seen_weights: dict[str, dict[str, float]] = {}

    @classmethod
    def from_settings(
        cls,
        section: RoutingSettings,
        *,
        clock: Clock,
        redis_url: str | None = None,
        client: aioredis.Redis | None = None,
    ) -> RoutingActuator:
        """Use ``client``, else connect to ``section.redis_url`` or ``redis_url``."""
        if client is None:
            url = section.redis_url or redis_url
            if url is None:
                raise ValueError("routing needs a Redis URL: set routing.redis_url or redis_url")
            client = aioredis.Redis.from_url(url)
        return cls(client, section, clock=clock)

    @property
    def name(self) -> str:
        return "routing"

    @property
    def provider(self) -> str:
        return "route"

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({ActionKind.SET_WEIGHTS})

    def key(self, route: str) -> str:
        return f"{self._settings.key_prefix}{route}"

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        states = []
        try:
            for route, config in self._settings.routes.items():
                states.append(await self._observe_route(route, config))
        except RedisError as exc:
            raise self._error(exc) from exc
        return states

    async def _observe_route(self, route: str, config: RouteSettings) -> ResourceState:
        raw = await self._redis.hgetall(self.key(route))
        seeded = False
        if not raw:
            status, _ = await self._write(route, "0", "", config.weights)
            seeded = status == _WRITTEN
            raw = await self._redis.hgetall(self.key(route))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        version = fields.get("_version", "0")
        self._seen_versions[route] = version
        weights, problems = _parse_weights(fields)
        self._seen_weights[route] = dict(weights)
        total = math.fsum(weights.values())
        if not weights or abs(total - 1) > WEIGHT_TOLERANCE:
            problems.append(f"weights sum to {total:g}, not 1")
        shown = " ".join(f"{m}={format_weight(w)}" for m, w in weights.items())
        facet = RouteWeights(
            weights=weights,
            version=int(version) if version.isdigit() else 0,
            floors=dict(config.floors),
        )
        attributes: dict[str, JSON] = {
            "configured_weights": dict(config.weights),
            "models": list(config.models),
            "updated_at": fields.get("_updated_at"),
            "seeded": seeded,
        }
        return ResourceState(
            ref=ResourceRef("route", route, kind="route"),
            health=Health.DEGRADED if problems else Health.HEALTHY,
            observed_at=self._clock.now(),
            detail=f"v{version} {shown}" + (f" ({'; '.join(problems)})" if problems else ""),
            attributes=attributes,
            weights=facet,
        )

    async def apply(self, action: Action, key: str) -> Outcome:
        route = action.target.name
        expected = self._seen_versions.get(route)
        # Unobserved, the weights now are unknown: no model may stay that is not allowed.
        current = self._seen_weights.get(route, {}) if expected is not None else {}
        params = checked_params(action, self._settings.routes.get(route), current)
        if isinstance(params, Outcome):
            return params
        try:
            if expected is None:
                found = await self._redis.hget(self.key(route), "_version")
                expected = _text(found) if found is not None else "0"
            status, version = await self._write(route, expected, key, params.weights)
        except RedisError as exc:
            return self._error(exc).outcome()
        if status == _CONFLICT:
            return Outcome.failure(
                f"route {route} changed under us (expected v{expected}, found v{version})",
                code="version_conflict",
            )
        if status == _ALREADY:
            return Outcome.success(f"{route} weights already applied (v{version}, key {key})")
        self._seen_versions[route] = version
        self._seen_weights[route] = dict(params.weights)
        shown = " ".join(f"{m}={format_weight(w)}" for m, w in params.weights.items())
        return Outcome.success(f"{route} weights v{version}: {shown}")

    async def confirm_applied(self, target: ResourceRef, kind: str, key: str) -> str | None:
        """Whether the route's hash carries ``key`` as ``_action_key``: `ConfirmsKeys` for
        recovery. Certain: the write script sets it with the weights, atomically, and a
        later write replaces it. One HGET; a Redis error raises `ActuatorError`."""
        route = target.name
        if target.provider != self.provider or kind not in self.action_kinds:
            return None
        if route not in self._settings.routes:
            return None
        try:
            found = await self._redis.hget(self.key(route), "_action_key")
        except RedisError as exc:
            raise self._error(exc) from exc
        if found is None or _text(found) != key:
            return None
        return f"route {route} carries _action_key={key}"

    async def _write(
        self, route: str, expected: str, key: str, weights: Mapping[str, float]
    ) -> tuple[int, str]:
        """Run the write script: (``_WRITTEN``/``_CONFLICT``/``_ALREADY``, version)."""
        args: list[str] = [expected, self._clock.now().isoformat(), key]
        for model, weight in weights.items():
            args += [model, format_weight(weight)]
        result: Any = await self._script(keys=[self.key(route)], args=args)
        return int(result[0]), _text(result[1])

    def _error(self, exc: RedisError) -> ActuatorError:
        """The one line for a failed Redis call: temporary, or for a command or key the
        server's ACL refuses (NOPERM) terminal, naming the user, never the password, and
        the rule to grant, since no retry brings a grant."""
        if not isinstance(exc, NoPermissionError):
            return ActuatorError(f"redis: {exc}")
        given = self._redis.connection_pool.connection_kwargs
        rule = acl_rule(self._settings.key_prefix, db=redisacl.database(given))
        why = f"NoPermissionError: {exc}"
        return ActuatorError(
            f"Redis at {redisacl.address(given)}: "
            + redisacl.denied(given, "routing", why, rule, "routing.redis_url"),
            kind=ErrorKind.TERMINAL,
            code="NOPERM",
        )

    async def aclose(self) -> None:
        await self._redis.aclose()


def acl_rule(key_prefix: str, *, db: int = 0) -> str:
    """The ACL rule a Redis user needs for routing under ``key_prefix``: the commands
    `RoutingActuator` sends (HGETALL and HGET; EVALSHA, and SCRIPT LOAD when Redis
    does not know the script yet; in the script HGET, DEL and HSET), SELECT for a
    database other than 0, and the routes' keys."""
    return redisacl.acl_rule(COMMANDS, f"{key_prefix}*", db=db)


def checked_params(
    action: Action, config: RouteSettings | None, current: Mapping[str, float]
) -> SetWeights | Outcome:
    """The action's params when the route may take them, else the terminal refusal.

    ``current``: the route's weights now (see `weights_refusal`).

    The simulated platform (`jarvis.simulation.llm`) refuses through this too,
    so the simulation cannot accept weights the real actuator would refuse.
    """
    params = action.params
    if not isinstance(params, SetWeights) or action.target.provider != "route":
        return Outcome.failure(
            f"routing cannot apply {action.kind} to {action.target}",
            kind=ErrorKind.TERMINAL,
            code="unsupported",
        )
    if config is None:
        return Outcome.failure(
            f"route {action.target.name!r} is not configured",
            kind=ErrorKind.TERMINAL,
            code="unknown_route",
        )
    problem = weights_refusal(params.weights, config, current)
    if problem:
        return Outcome.failure(problem, kind=ErrorKind.TERMINAL, code="invalid_weights")
    return params


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse_weights(fields: Mapping[str, str]) -> tuple[dict[str, float], list[str]]:
    weights: dict[str, float] = {}
    problems: list[str] = []
    for model, text in fields.items():
        if model.startswith("_"):
            continue
        try:
            weight = float(text)
        except ValueError:
            problems.append(f"{model} has weight {text!r}")
            continue
        if not math.isfinite(weight) or weight < 0:
            problems.append(f"{model} has weight {text!r}")
            continue
        weights[model] = weight
    return weights, problems


def weights_refusal(
    weights: Mapping[str, float] | None,
    config: RouteSettings,
    current: Mapping[str, float] | None = None,
) -> str:
    """Why these weights must not be written to the route, or "" if they may.

    A model the route does not allow may keep at most the share of the
    traffic it has now (``current``, as weights that need not sum to 1): one
    removed from the configuration leaves in steps the guard bounds, and
    nothing can send it more. Also the simulated routes' rule
    (`jarvis.simulation.llm`), so both refuse alike.
    """
    total = math.fsum(current.values()) if current else 0.0
    now = {m: w / total for m, w in current.items()} if current and total > 0 else {}
    if not weights:
        return "SET_WEIGHTS needs a non-empty weights map"
    if any(not math.isfinite(w) or w < 0 for w in weights.values()):
        return f"weights must be finite and non-negative: {dict(weights)}"
    total = math.fsum(weights.values())
    if abs(total - 1) > WEIGHT_TOLERANCE:
        return f"weights must sum to 1, not {total:g}"
    unknown = sorted(
        m
        for m, w in weights.items()
        if m.startswith("_")
        or (m not in config.models and (m not in now or w > now[m] + WEIGHT_TOLERANCE))
    )
    if unknown:
        return f"models not allowed on this route: {unknown}"
    broken = sorted(
        m for m, floor in config.floors.items() if weights.get(m, 0.0) < floor - WEIGHT_TOLERANCE
    )
    if broken:
        return f"weights break the route's floors for {broken}"
    return ""
