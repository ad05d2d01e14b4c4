"""Reading a Cloud Run service's revisions: each tick only what it needs, the list when it changed.

`jarvis.actuators.cloudrun.actuator` reads its revisions here, from its worker threads:
`RevisionReader.for_observe` on every tick, `RevisionReader.listed` whenever an action
needs them all as they are now (a rollback's target, a restart's pinned canaries).
Parsed at this boundary into `RevisionView`s (`jarvis.actuators.cloudrun.state`).

A tick needs two things of the revisions, which change at different rates:

- the state of the revisions that matter now, those traffic reaches and the latest
  created one (a serving revision can start crash looping at any time): read fresh
  every tick, one GET each, usually one in all;
- the rollback candidates (``versions.previous`` and ``available``: every ready
  revision), which change when a revision is created: the whole list, paged, read
  again only when the service's latest created revision is another one than at the
  last listing (or the service is another one of the same name), or that listing is
  older than `RELIST_AFTER` (revisions deleted by
  hand). In between, the last listing serves, each fresh read replacing its entry
  there for good.

A service with many revisions was listed whole every tick: 10 pages for 1,000.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from google.api_core import exceptions as gexc

from jarvis.actuators.cloudrun.client import Clients
from jarvis.actuators.cloudrun.state import RevisionView, ServiceView, revision_view

RELIST_AFTER = timedelta(minutes=10)
"""The longest a listing stands in for the rollback candidates before it is read again."""


@dataclass(frozen=True, slots=True)
class _Listing:
    uid: str
    """The service's: one deleted and created again under its name is another."""
    latest_created: str
    at: datetime
    revisions: tuple[RevisionView, ...]


class RevisionReader:
    """The revisions of the services one actuator reads, with the last listing of each."""

    def __init__(self, clients: Clients, *, timeout: float) -> None:
        self._clients = clients
        self._timeout = timeout
        self._listings: dict[str, _Listing] = {}
        """By service's full name; written by one worker thread per service at a time."""

    def listed(
        self, name: str, *, now: datetime, uid: str, latest_created: str
    ) -> list[RevisionView]:
        """Every revision of the service ``name`` (full resource name), as listed now; the
        listing stands for the service (``uid``) while its latest created revision is
        ``latest_created``."""
        pages = self._clients.revisions.list_revisions(
            parent=name, timeout=self._timeout, retry=None
        )
        revisions = tuple(revision_view(r) for r in pages)
        self._listings[name] = _Listing(uid, latest_created, now, revisions)
        return list(revisions)

    def for_observe(self, name: str, view: ServiceView, *, now: datetime) -> list[RevisionView]:
        """What a tick needs of the revisions of ``view``, the service ``name`` as just read."""
        listing = self._listings.get(name)
        if (
            listing is None
            or listing.uid != view.uid
            or listing.latest_created != view.latest_created
            or now - listing.at >= RELIST_AFTER
        ):
            return self.listed(name, now=now, uid=view.uid, latest_created=view.latest_created)
        fresh: dict[str, RevisionView | None] = {}
        for short in view.named_revisions():
            try:
                revision = self._clients.revisions.get_revision(
                    name=f"{name}/revisions/{short}", timeout=self._timeout, retry=None
                )
            except gexc.NotFound:
                fresh[short] = None  # deleted since: read as a list without it would be
                continue
            fresh[short] = revision_view(revision)
        known = {r.name for r in listing.revisions}
        merged = [fresh.get(r.name, r) for r in listing.revisions]
        merged += [r for short, r in fresh.items() if short not in known]
        revisions = tuple(r for r in merged if r is not None)
        # What was read replaces the listing's older word: a canary seen failing is no
        # rollback candidate once traffic leaves it and it is read no more.
        self._listings[name] = replace(listing, revisions=revisions)
        return list(revisions)
