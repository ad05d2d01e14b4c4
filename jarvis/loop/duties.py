"""Fleet-wide duties: what the fleet does once however many replicas run, and which one does it.

`jarvis run` (`jarvis.cli.daemon`) starts the same tasks beside the scheduler
on every replica. Some are each replica's own: the elector, the HTTP server,
the notifier's consuming and delivering (every replica's notifier saves only
over the state it read and claims each row before sending it, `jarvis.notify`).
The others act on the one database or tell people, and must be done once for
the fleet: the daily report (`jarvis.report.deliver`), the revenue book
(`jarvis.loop.revenue`), event retention (`jarvis.loop.retention`) and the
page for a store outage (`jarvis.notify.service`).

One rule says which replica does them: the holder of the loop's lease, or with
shards the holder of shard 0 (every shard holder leads its shards, so "leads"
would be each of them). `FleetDuties.held` is that rule now. While the
database is away no lease can be renewed and soon nobody holds one, so the
store outage goes by `FleetDuties.held_at_last_answer`: the replica the
database last answered as the holder tells it, once for the fleet, rather than
every replica that sees it (each under an incident of its own) or none.
One node (SQLite, no elector) does them all.
"""

from __future__ import annotations

from jarvis.loop.election import Elector
from jarvis.loop.shards import ShardElector

__all__ = ["FleetDuties"]


class FleetDuties:
    """Whether this replica does the fleet-wide duties; see the module docstring."""

    def __init__(self, elector: Elector | ShardElector | None) -> None:
        self._lease = elector.electors[0] if isinstance(elector, ShardElector) else elector
        """The lease the duties go with: the loop's, shard 0's, or None on one node."""

    def held(self) -> bool:
        """Whether this replica does them now: it holds the lease, renewed in time."""
        return self._lease is None or self._lease.epoch is not None

    def held_at_last_answer(self) -> bool:
        """Whether the database's last answer left this replica holding the lease: what it
        knows of the duties while the database is away, when nobody holds it any more."""
        return self._lease is None or self._lease.held_at_last_answer
