"""Settings checked against the registry: what config alone cannot see.

An allow-list entry or a disruption budget must name a scheme some provider
acts on and kinds it applies there; a metric source must read services of an
enabled provider. Config validates each section on its own; only here are
the settings held against `PROVIDERS`. Run by the CLI before a command and by
`build_app`. `glob_warnings` names the resource globs whose ``*`` spans path
segments where it likely surprises, every setting's by one rule (`_spanning`):
`jarvis config check` prints them and `jarvis run` logs them, and both still
run the configuration; `jarvis silence add` warns of its ``--match`` the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jarvis.config import ConfigError, Settings
from jarvis.model.globs import matches, spanning_example, spans_segments
from jarvis.providers.registry import PROVIDERS, Provider, acting_schemes, enabled

__all__ = ["check_allowlist", "glob_warnings", "uri_glob_warning"]


def check_allowlist(settings: Settings, table: Sequence[Provider] = PROVIDERS) -> None:
    """Every allow-list entry and disruption budget names a scheme some provider acts
    on, and kinds it applies; every metric source's service, an enabled provider's scheme.

    An entry that can never match is a configuration error, not a silent deny:
    ``provider = "kubernetes"`` (for ``k8s``) would otherwise block everything,
    and a budget naming it would limit nothing.
    """
    schemes = acting_schemes(table)
    problems = [
        *_allowlist_problems(settings, schemes),
        *_budget_problems(settings, schemes),
        *_metric_source_problems(settings, table),
    ]
    if problems:
        raise ConfigError("\n".join(["invalid configuration:", *problems]))


def _allowlist_problems(settings: Settings, schemes: dict[str, frozenset[str]]) -> list[str]:
    problems: list[str] = []
    for index, entry in enumerate(settings.allowlist):
        kinds = schemes.get(entry.provider)
        if kinds is None:
            problems.append(
                f"  allowlist.{index}.provider: unknown provider {entry.provider!r}; "
                f"expected one of {', '.join(sorted(schemes))}"
            )
            continue
        problems.extend(
            _action_problems(f"allowlist.{index}", entry.provider, entry.actions, kinds)
        )
    return problems


def _budget_problems(settings: Settings, schemes: dict[str, frozenset[str]]) -> list[str]:
    problems: list[str] = []
    for index, entry in enumerate(settings.budgets):
        if entry.provider == "*":
            kinds = frozenset().union(*schemes.values())
        elif entry.provider in schemes:
            kinds = schemes[entry.provider]
        else:
            problems.append(
                f"  budgets.{index}.provider: unknown provider {entry.provider!r}; "
                f"expected '*' or one of {', '.join(sorted(schemes))}"
            )
            continue
        problems.extend(_action_problems(f"budgets.{index}", entry.provider, entry.actions, kinds))
    return problems


def _action_problems(
    where: str, provider: str, actions: Iterable[str], kinds: frozenset[str]
) -> list[str]:
    """The entry's actions its provider cannot apply, as one problem line (none if all can)."""
    unknown = sorted(a for a in actions if a != "*" and a not in kinds)
    if not unknown:
        return []
    return [
        f"  {where}.actions: {provider} cannot {', '.join(unknown)}; "
        f"expected '*' or some of {', '.join(sorted(kinds))}"
    ]


def _metric_source_problems(settings: Settings, table: Sequence[Provider]) -> list[str]:
    # A service whose scheme no enabled provider observes is never enriched:
    # its metrics would be read every tick and silently thrown away.
    problems: list[str] = []
    if settings.metrics.cloud_monitoring is not None and settings.cloudrun is None:
        problems.append(
            "  metrics.cloud_monitoring: reads the services of [cloudrun], which is not configured"
        )
    prometheus = settings.metrics.prometheus
    if prometheus is None:
        return problems
    observed = {scheme for provider in enabled(settings, table) for scheme in provider.owns}
    return problems + [
        f"  metrics.prometheus.services: {uri} is not a resource of an enabled provider "
        f"(observed: {', '.join(sorted(observed))})"
        for uri in sorted(prometheus.services)
        if uri.partition("://")[0] not in observed
    ]


def glob_warnings(settings: Settings, table: Sequence[Provider] = PROVIDERS) -> list[str]:
    """One line per resource glob of the settings with a ``*`` inside a segment that spans
    ``/`` on its provider's paths (`jarvis.model.globs.spans_segments`): the allow-list's and
    the budgets' ``resources`` (over the path after ``provider://``), and the globs over
    whole resource URIs: scaling rules' and rollback's ``match``, notification routes'
    ``resources``. Each line names its setting.

    Not an error: the glob means what it always meant (README, "Resource globs"), and
    configurations rely on ``*`` crossing ``/``; the line says how to write it either way.
    A budget on every provider (``"*"``) is held to the deepest paths.
    """
    paths = [
        (f"allowlist.{i}.resources", e.provider, e.resources)
        for i, e in enumerate(settings.allowlist)
    ] + [
        (f"budgets.{i}.resources", e.provider, e.resources) for i, e in enumerate(settings.budgets)
    ]
    lines = [_spanning(where, provider, glob, table) for where, provider, glob in paths]
    lines += [uri_glob_warning(where, glob, table) for where, glob in _uri_globs(settings)]
    return [line for line in lines if line is not None]


def uri_glob_warning(where: str, glob: str, table: Sequence[Provider] = PROVIDERS) -> str | None:
    """The line `glob_warnings` gives a glob over the whole resource URI (``ecs://prod*``),
    named ``where``; None when it does not span. `jarvis silence add` warns of its
    ``--match`` by it too.

    The path after ``SCHEME://`` is held to that scheme's paths, as an allow-list entry's
    ``resources`` to its provider's; a scheme that is itself a glob (``*://prod*``) to the
    deepest paths of the schemes it matches. A glob that names no scheme (``*-api``, a
    cause) already lets its ``*`` take the scheme and every ``/``, and is not warned about.
    """
    scheme, sep, path = glob.partition("://")
    if not sep:
        return None
    return _spanning(where, scheme, path, table, uri=True)


def _uri_globs(settings: Settings) -> list[tuple[str, str]]:
    """Every setting's glob over whole resource URIs, with the setting's name."""
    globs = [(f"scaling.rules.{i}.match", r.match) for i, r in enumerate(settings.scaling.rules)]
    globs += [(f"rollback.match.{i}", glob) for i, glob in enumerate(settings.rollback.match)]
    notify = settings.notify
    for name, channel in (
        ("slack", notify.slack),
        ("pagerduty", notify.pagerduty),
        ("email", notify.email),
    ):
        if channel is not None:
            globs += [(f"notify.{name}.resources.{i}", g) for i, g in enumerate(channel.resources)]
    return globs


def _spanning(
    where: str, schemes: str, glob: str, table: Sequence[Provider], *, uri: bool = False
) -> str | None:
    """The warning for path glob ``glob`` on the schemes ``schemes`` matches (a provider's
    one, or ``*``), held to the deepest of their paths; None when it does not span.
    ``uri``: the operator wrote ``schemes://glob``, and the line quotes it so."""
    depth = {scheme: p.segments.get(scheme, 1) for p in table for scheme in p.owns}
    matching = sorted((s for s in depth if matches(s, schemes)), key=lambda s: (-depth[s], s))
    if not matching or not spans_segments(glob, segments := depth[matching[0]]):
        return None
    paths = f"{matching[0]}://" if len(matching) == 1 else "the deepest"
    missing = segments - len(glob.split("/"))
    prefix, example_prefix = (f"{schemes}://", f"{matching[0]}://") if uri else ("", "")
    example = spanning_example(glob, segments)
    shown = "" if example is None else f": {prefix + glob!r} matches {example_prefix + example!r}"
    start, end = prefix + glob + "/*" * missing, prefix + "*/" * missing + glob
    return (
        f"{where} {prefix + glob!r}: '*' also matches '/', so a '*' inside a segment can "
        f"span several segments of {paths} paths ({segments} to a path){shown}; write the "
        f"segments out with '/' to say which you mean: {start!r} (from the "
        f"start of the path) or {end!r} (up to its end)"
    )
