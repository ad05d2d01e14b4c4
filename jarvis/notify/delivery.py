"""Delivering the outbox: one attempt per due row, retries with backoff and jitter.

Called by the notifier after each consume. A row is sent, or rescheduled at
``base * 2**(attempts-1)`` seconds (capped, then scaled by a random factor in
[0.5, 1] so a fleet of retries does not arrive at once; never sooner than a
429's ``Retry-After``, itself capped at the maximum backoff), or marked failed
after its last attempt or a refusal retrying cannot fix. An email the server
took for some recipients and refused for others is marked sent (sending it
again would reach the others twice) with the refusals as its error, counted
``partial`` and warned like a failure; but while a recipient's refusal is
temporary (a 4xx at RCPT TO: greylisting, a full mailbox) the row is retried
with the same backoff for the recipients so refused, and only for them,
until they take it or the last attempt records them as not reached. Each outcome is
counted in ``jarvis_notifications_total{channel,outcome}``. A channel that
fails in a way a retry may fix is not tried again in the same round, and one
that answered 429 not before its Retry-After: its other rows wait, spending no
attempt, and neither a hung receiver nor a backlog behind a rate limit holds
the other channels' rows for long. Whatever a
channel raises costs its row an attempt, and a row whose notice cannot be
read fails at once: one row never holds back the rows after it, except those of
its own incident on its own channel, which go in order (`NotificationOutbox.due`:
a resolve sent before its retried trigger would leave PagerDuty an incident
that nothing resolves). Every replica's notifier delivers from the one outbox,
each row after claiming it (`NotificationOutbox.claim`), so the other passes a
row in flight by. Delivery is at least once: a row is marked sent after the
receiver answered, so a crash in between sends it again once its claim has run
out; PagerDuty folds that repeat into the same incident by its dedup key, and
the window is one HTTP round trip wide. A clean stop does
not open that window: the send and its record are shielded from cancellation
(in `jarvis run` up to its shutdown deadline: past it, a SIGKILL would cut
them anyway).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta

import anyio
import structlog

from jarvis.model import Clock
from jarvis.notify.alerts import AlertChange, Severity
from jarvis.notify.channels import Channel, DeliveryError, PartialDeliveryError
from jarvis.notify.groups import Route
from jarvis.notify.notice import Notice
from jarvis.store.outbox import NotificationOutbox
from jarvis.telemetry.metrics import Metrics

__all__ = ["Delivery"]

log = structlog.get_logger("jarvis.notify")


class _ChannelBugError(DeliveryError):
    """A channel raised something else for one notice: a bug about that notice, which says
    nothing of the receiver, so the channel's other rows still go this round."""


class Delivery:
    """Sends due outbox rows through their channels and records what happened."""

    def __init__(
        self,
        *,
        clock: Clock,
        metrics: Metrics,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        send_timeout: float,
        rng: random.Random,
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.send_timeout = send_timeout
        self.rng = rng
        self.shielded: Callable[[], AbstractContextManager[object, bool]] = lambda: (
            anyio.CancelScope(shield=True)
        )
        """The scope a send and its record run in, kept from cancellation; `jarvis run`'s
        ends by its shutdown deadline."""
        self.resting: dict[str, datetime] = {}
        """Channels a 429 asked to be left alone, and until when."""
        self.claim = timedelta(seconds=2 * send_timeout + 60)
        """How long a claimed row is this notifier's: its send is cut at ``send_timeout``, and
        its record is one write; a crash in between leaves it due again after this."""

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: exponential, capped, jittered."""
        delay: float = min(self.backoff_base * 2.0 ** (attempts - 1), self.backoff_max)
        return delay * (0.5 + self.rng.random() / 2)

    async def deliver_due(
        self, outbox: NotificationOutbox, channels: dict[str, Channel], limit: int = 50
    ) -> int:
        """One attempt at every due row (at most ``limit`` a round); return how many were sent.

        Each row is claimed before it is sent (`NotificationOutbox.claim`), for as long as
        its send and record may take, so the other replica's notifier passes it by.
        """
        sent = 0
        failing: set[str] = set()
        for _ in range(limit):
            now = self.clock.now()
            idle = failing | {name for name, until in self.resting.items() if until > now}
            row = await outbox.claim(now, now + self.claim, skip=idle)
            if row is None:
                break
            attempts = row.attempts + 1
            channel = channels.get(row.channel)
            if channel is None:
                await outbox.mark_failed(row.id, attempts, f"channel {row.channel} not configured")
                self.metrics.notifications.labels(channel=row.channel, outcome="failed").inc()
                continue
            try:
                notice = Notice.from_json(row.message)
            except (KeyError, TypeError, ValueError) as exc:
                # A damaged row is never sendable: it fails, and the rows after it go out.
                unreadable = f"notice cannot be read: {type(exc).__name__}: {exc}"
                await outbox.mark_failed(row.id, attempts, unreadable)
                self.metrics.notifications.labels(channel=row.channel, outcome="failed").inc()
                log.exception("notification unreadable", incident=row.incident)
                continue
            # The send and its record are one unit a shutdown waits for (the send
            # is bounded by `send_timeout`): a receiver that has the notice must
            # not get it again from the next daemon.
            outcome = None
            with self.shielded():
                error = await self._send(channel, notice)
                outcome = await self._record(outbox, row.id, attempts, notice, error)
            if outcome is None:
                # Cut by the shutdown deadline: unrecorded, it goes again once its claim
                # runs out (from the next start, or the other replica's notifier).
                log.warning("notification cut short by the shutdown", channel=row.channel)
                return sent
            sent += outcome == "sent"
            self.metrics.notifications.labels(channel=row.channel, outcome=outcome).inc()
            if error is not None and error.temporary and not isinstance(error, _ChannelBugError):
                self._rest(row.channel, error, failing)
            if error is not None:
                log.warning(
                    "notification not delivered"
                    + (" to every recipient" if isinstance(error, PartialDeliveryError) else ""),
                    channel=row.channel,
                    incident=row.incident,
                    attempts=attempts,
                    outcome=outcome,
                    error=str(error),
                )
        return sent

    def _rest(self, channel: str, error: DeliveryError, failing: set[str]) -> None:
        """A channel that failed in a way a retry may fix is not tried again this round (a
        hung receiver would cost each of its rows ``send_timeout``, and hold the other
        channels' rows behind them), nor before a 429's Retry-After (capped at the longest
        backoff): each further try would be refused too, and cost its row an attempt."""
        failing.add(channel)
        if error.retry_after:
            wait = timedelta(seconds=min(error.retry_after, self.backoff_max))
            self.resting[channel] = self.clock.now() + wait

    async def _record(
        self,
        outbox: NotificationOutbox,
        row_id: int,
        attempts: int,
        notice: Notice,
        error: DeliveryError | None,
    ) -> str:
        now = self.clock.now()
        last = attempts >= self.max_attempts
        # Refused for good on an earlier attempt of this row, which reached the others.
        refused = list(notice.refused)
        if isinstance(error, PartialDeliveryError):
            refused += [str(r) for r in error.refused if not r.temporary]
            later = tuple(r.recipient for r in error.refused if r.temporary)
            if later and not last:
                # Greylisting: those refused with a 4xx, and only they, get it on a retry.
                owed = replace(notice, recipients=later, refused=tuple(refused))
                at = now + timedelta(seconds=self.backoff(attempts))
                await outbox.mark_retry(row_id, attempts, at, str(error), owed.to_json())
                return "retried"
            refused += [str(r) for r in error.refused if r.temporary]
            error = None
        elif notice.recipients and error is not None and (last or not error.temporary):
            # A retry for the refused recipients fails for good: the others have it.
            refused.append(f"{', '.join(notice.recipients)}: {error}")
            error = None
        if error is None:
            if not refused:
                await outbox.mark_sent(row_id, attempts, now)
                return "sent"
            told = f"{notice.channel} not delivered to: " + "; ".join(refused)
            await outbox.mark_sent(row_id, attempts, now, error=told)
            return "partial"
        if error.temporary and not last:
            # A receiver's Retry-After is honoured, up to the longest backoff we would wait.
            delay = max(self.backoff(attempts), min(error.retry_after or 0.0, self.backoff_max))
            at = now + timedelta(seconds=delay)
            await outbox.mark_retry(row_id, attempts, at, str(error))
            return "retried"
        await outbox.mark_failed(row_id, attempts, str(error))
        return "failed"

    async def _send(self, channel: Channel, notice: Notice) -> DeliveryError | None:
        try:
            with anyio.fail_after(self.send_timeout):
                await channel.send(notice)
        except DeliveryError as exc:
            return exc
        except TimeoutError:
            return DeliveryError(f"{channel.name} timed out", temporary=True)
        except Exception as exc:
            # A bug in a channel for this notice: it costs this row an attempt (retried,
            # then failed), never the rows after it, as an exception out of the round did.
            log.exception("notification channel failed", channel=channel.name)
            return _ChannelBugError(f"{channel.name} failed: {type(exc).__name__}", temporary=True)
        return None

    async def direct(
        self,
        channels: dict[str, Channel],
        routes: list[Route],
        change: AlertChange,
        *,
        resolved: bool,
    ) -> None:
        """Report the event store unreachable (or back) without the outbox, which lives in it.

        One attempt per channel: best effort, because nothing durable is left
        to remember a retry in, nor to agree through with another replica (the
        notifier calls this on one replica only: `Notifier.reports_outage`).
        ``change`` (`jarvis.notify.outage`) picks the routes by its severity (a
        resolve goes where the trigger went), and its words are what the notice says.
        """
        since = change.at
        alert = {
            "fingerprint": change.fingerprint,
            "resource": "",
            "cause": change.cause,
            "severity": change.severity.value,
            "summary": change.summary,
            "tried": change.tried,
            "reset": change.reset,
            "since": since.isoformat(),
            "oneshot": False,
            "resolved": resolved,
        }
        for route in routes:
            channel = channels.get(route.channel)
            if channel is None or not route.matches(change):
                continue
            notice = Notice(
                channel=route.channel,
                incident=f"jarvis-store-unreachable-{since:%Y%m%dT%H%M%S}",
                action="resolve" if resolved else "trigger",
                # A warning raised to critical is a second trigger of the same incident.
                sequence=3 if resolved else 1 + (change.severity is Severity.CRITICAL),
                severity=change.severity,
                cause=change.cause,
                provider="",
                alerts=(alert,),
                since=since,
            )
            failure = await self._send(channel, notice)
            outcome = "sent" if failure is None else "failed"
            if isinstance(failure, PartialDeliveryError):
                outcome = "partial"
            self.metrics.notifications.labels(channel=route.channel, outcome=outcome).inc()
