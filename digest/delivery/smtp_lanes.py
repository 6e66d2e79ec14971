"""One thread drives every connection of an SMTP batch: non-blocking sockets and a selector.

Each connection (a *lane*) runs one transaction at a time — the envelope (MAIL, RCPT, DATA; in
one write when the server offers PIPELINING, RFC 2920), then the content — and takes the batch's
next message when it is done. With PIPELINING, the next message's envelope goes out in the same
write as the end of the content (RFC 2920 §3.1 lets the content start a group), so its replies
come with the content's and it costs no round trip of its own; the transaction before it ended
with its end-of-data reply, whatever that says, so no RSET is ever sent between them. While one
lane waits for its server, the thread serves the others, so N connections overlap without N
threads handing the interpreter to each other several times per message (with threads, that
hand-over cost more CPU than the sending).

**Durability.** As a lane's message is answered, its outcome is reported (queued for the
ledger's group commit) and the lane goes on with the next envelope. When the server is ready for
that message's content, the content goes out but for its end-of-data line: the server cannot
accept a message before that line (a connection that ends first delivers nothing), so only the
line waits until the outcome (and the new message's mark) is durable. Lanes that reach that
point are collected, and once the thread has served every socket that was ready, one wait
commits everything queued — usually every lane's outcome in one transaction, since the servers
take the contents in meanwhile and answer together — and the lanes end their contents.

Connecting, TLS and login stay with smtplib (blocking, once per connection); only the
transactions run here. What a failure means is the same as in digest.delivery.smtp:
a connection lost before the content was handed over is opened again and the message sent once
more; lost after it, the message may have arrived (a retry, counted as possibly delivered); a
reply that cannot be read, or a timeout, ends the connection and makes the message a retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from digest.delivery.base import NotDurable, OutgoingMessage
from digest.delivery.smtp_steps import TransactionSteps
from digest.delivery.smtp_wire import (
    ENVELOPE,
    HELD,
    IDLE,
    READ,
    RSET,
    WRITE,
    Ahead,
    Connections,
    Lane,
    Lost,
    envelope_commands,
)
from digest.errors import DeliveryConfigError
from digest.models import DeliveryResult


class LaneLoop(TransactionSteps):
    """Sends one batch over the backend's connections; :meth:`run` returns the results in order,
    and raises the first DeliveryConfigError (with the results so far) after the lanes that were
    mid-transaction finished theirs."""

    def __init__(self, backend: Connections, messages: Sequence[OutgoingMessage], *, timeout: float) -> None:
        self.b = backend
        self.messages = messages
        self.results: list[DeliveryResult | None] = [None] * len(messages)
        self.work: Iterator[int] = iter(range(len(messages)))
        self.returned = []
        self.selector = backend.selector
        self.waiting_content: list[Lane] = []
        self.error: DeliveryConfigError | None = None
        self.timeout = timeout

    def run(self) -> list[DeliveryResult | None]:
        lanes = self.b.lanes_for(len(self.messages))
        try:
            while True:
                for lane in lanes:
                    if lane.state == IDLE:
                        self._next(lane)
                if all(lane.state == IDLE for lane in lanes):
                    break
                if not self.waiting_content:
                    self._poll(lanes)
                elif not self._poll(lanes, at_once=True):
                    # Nothing else to serve now: one commit for every outcome reported so far.
                    self._release_content()
        except BaseException:
            for lane in lanes:
                if lane.state != IDLE:  # mid-transaction: the server waits for what will not come
                    self._drop(lane)
            raise
        finally:
            for lane in lanes:
                self._settle(lane)
        if self.error is not None:
            raise self.error
        return self.results

    def _poll(self, lanes: list[Lane], *, at_once: bool = False) -> int:
        """Serve the sockets that are ready (waiting for one until the nearest deadline, or not
        at all with ``at_once``); returns how many were."""
        now = time.monotonic()
        busy = [lane for lane in lanes if lane.state != IDLE and lane not in self.waiting_content]
        if not busy:
            return 0
        wait = 0.0 if at_once else max(0.0, min(lane.deadline for lane in busy) - now)
        ready = self.selector.select(wait)
        for key, mask in ready:
            lane = key.data
            if lane.state == IDLE:
                # A server that speaks out of turn (a 421 before closing) or closes an idle
                # connection: that connection is done.
                self._drop(lane)
                continue
            self._guarded(lane, self._ready_socket, lane, mask)
        now = time.monotonic()
        for lane in busy:
            if lane.state != IDLE and lane not in self.waiting_content and now >= lane.deadline:
                self._lost(lane, Lost("timed out"))
        return len(ready)

    def _ready_socket(self, lane: Lane, mask: int) -> None:
        if mask & WRITE:
            self._write(lane)
        if mask & READ and lane.state != IDLE:
            self._read(lane)

    def _guarded(self, lane: Lane, step: Callable[..., None], *args: object) -> None:
        """Run one step of ``lane``'s transaction; whatever goes wrong decides only its message."""
        try:
            step(*args)
        except Lost as exc:
            self._lost(lane, exc)
        except DeliveryConfigError as exc:
            self._stop(lane, exc)
        except NotDurable:
            raise
        except Exception as exc:  # noqa: BLE001 - one recipient's problem never stops a batch
            self._unexpected(lane, exc)

    def _unexpected(self, lane: Lane, exc: Exception) -> None:
        m = lane.msg
        self._drop(lane)
        if m is None:  # between messages: only the connection is lost
            lane.state = IDLE
            return
        self._finish(
            lane,
            DeliveryResult(m.recipient, "failed", None, f"not sent: {exc.__class__.__name__}: {exc}", {"ours": "1"}),
        )

    def _release_content(self) -> None:
        """Wait until the outcomes the collected lanes reported last are durable (the first wait
        commits them all), then let each end its held content."""
        ready, self.waiting_content = self.waiting_content, []
        for lane in ready:
            self._settle(lane)
        for lane in ready:
            if lane.state == HELD:  # (not lost meanwhile)
                self._guarded(lane, self._send_content, lane)

    def _next(self, lane: Lane) -> None:
        """Start the batch's next message on the idle ``lane`` (taking more while messages are
        decided at once), or leave it idle when none is left."""
        while lane.state == IDLE:
            if self.error is not None or self.b.stopping:
                return
            j = self._take_job()
            if j is None:
                return
            m = self.messages[j]
            lane.job, lane.msg, lane.attempt = j, m, 1
            try:
                lane.utf8 = m.needs_smtputf8
                lane.data = self.b.smtp_data(m)
                lane.envelope = self.b.envelope(m)
            except Exception as exc:  # noqa: BLE001 - one recipient's problem never stops a batch
                detail = f"no message could be made for this address: {exc}"
                self._finish(lane, DeliveryResult(m.recipient, "failed", None, detail, {"ours": "1"}))
                continue
            self.b.pace_one()
            self._guarded(lane, self._begin, lane)

    def _take_job(self) -> int | None:
        """The batch's next message to send (one given back by a connection that ended first),
        or None when none is left."""
        return self.returned.pop() if self.returned else next(self.work, None)

    def _take_ahead(self, lane: Lane) -> Ahead | None:
        """The batch's next message for ``lane``'s envelope to follow its content, if the
        connection pipelines and will carry another message; else None (the lane takes its next
        message once this one ended, as without PIPELINING)."""
        conn = lane.conn
        if (
            conn is None
            or self.error is not None
            or self.b.stopping
            or not conn.has_extn("pipelining")
            or not self.b.room_for_another(lane)
        ):
            return None
        j = self._take_job()
        if j is None:
            return None
        m = self.messages[j]
        try:
            utf8 = m.needs_smtputf8
            data, envelope = self.b.smtp_data(m), self.b.envelope(m)
        except Exception:  # noqa: BLE001 - _next takes it again, and decides it
            self.returned.append(j)
            return None
        if utf8 and not conn.has_extn("smtputf8"):
            self.returned.append(j)  # (as above)
            return None
        self.b.pace_one()
        return Ahead(j, m, data, envelope, utf8, envelope_commands(envelope, utf8))

    def _stop(self, lane: Lane, exc: DeliveryConfigError) -> None:
        """Settings the server refuses (login, sender): no new message starts; the lanes that are
        mid-transaction finish theirs, and the batch then stops with what was done."""
        if self.error is None:
            self.error = exc
        self.b.stopping = True
        if lane.state not in (IDLE, RSET):
            self._drop(lane)
        if lane in self.waiting_content:
            self.waiting_content.remove(lane)
        lane.state = IDLE

    def _finish(self, lane: Lane, result: DeliveryResult) -> None:
        """Record the message's result, report it (its durability is waited for before this
        lane's next content ends) and go on with the next message."""
        self.results[lane.job] = result
        lane.result, lane.msg, lane.state = None, None, IDLE
        # (A message that sent no content leaves the previous outcome's wait open: close it.)
        self._settle(lane)
        lane.durable = self.b.report(result)
        self._resume(lane)

    def _resume(self, lane: Lane) -> None:
        """Make the message whose envelope went out behind the last content the lane's own: its
        replies come next on the same connection."""
        ahead, lane.ahead = lane.ahead, None
        if ahead is None:
            return
        if self.error is not None or self.b.stopping or lane.conn is None:
            # The message waits for another send. A server left in its envelope waits for the
            # content (after its 354, a QUIT would be read as part of a message): close, no QUIT.
            self.returned.append(ahead.job)
            if lane.conn is not None:
                self.b.drop(lane)
            return
        lane.job, lane.msg, lane.attempt = ahead.job, ahead.msg, 1
        lane.utf8, lane.data, lane.envelope = ahead.utf8, ahead.data, ahead.envelope
        lane.refusal, lane.handed_over, lane.result = None, False, None
        lane.state = ENVELOPE
        lane.commands = []
        lane.expect = [(stage, ok) for _, stage, ok in ahead.commands]

    def _settle(self, lane: Lane) -> None:
        wait, lane.durable = lane.durable, None
        if wait is not None:
            wait()
