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

import selectors
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

from digest.delivery.base import NotDurable, OutgoingMessage
from digest.delivery.smtp_wire import (
    CLOSING_DATA,
    CONTENT,
    END_OF_DATA,
    ENVELOPE,
    FINAL,
    HELD,
    IDLE,
    READ,
    RSET,
    WRITE,
    Ahead,
    CannotConnect,
    Connections,
    Lane,
    Lost,
    ends_connection,
    envelope_commands,
)
from digest.errors import DeliveryConfigError
from digest.models import DeliveryResult


class _Steps(ABC):
    """The steps of one message's transaction on a lane; :class:`LaneLoop` schedules them and
    decides what follows a message's end."""

    b: Connections
    selector: selectors.BaseSelector
    timeout: float
    waiting_content: list[Lane]
    returned: list[int]  # jobs taken ahead on a connection that ended: to be taken again
    error: DeliveryConfigError | None

    @abstractmethod
    def _finish(self, lane: Lane, result: DeliveryResult) -> None:
        """(see LaneLoop)"""

    @abstractmethod
    def _stop(self, lane: Lane, exc: DeliveryConfigError) -> None:
        """(see LaneLoop)"""

    @abstractmethod
    def _guarded(self, lane: Lane, step: Callable[..., None], *args: object) -> None:
        """(see LaneLoop)"""

    @abstractmethod
    def _take_ahead(self, lane: Lane) -> Ahead | None:
        """(see LaneLoop)"""

    def _begin(self, lane: Lane) -> None:
        """Give the envelope on a ready connection, or decide the message at once (no connection,
        or the address needs what the server lacks)."""
        m = lane.msg
        assert m is not None
        try:
            self.b.ready(lane)
        except DeliveryConfigError as exc:
            self._stop(lane, exc)
            return
        except CannotConnect as exc:  # a retry, with the reason
            self._finish(lane, DeliveryResult(m.recipient, "retry", None, str(exc)))
            return
        conn = lane.conn
        assert conn is not None
        if lane.utf8 and not conn.has_extn("smtputf8"):
            self._finish(
                lane,
                DeliveryResult(
                    m.recipient,
                    "failed",
                    None,
                    f"the address needs SMTPUTF8 (RFC 6531), which SMTP server {self.b.where} does not offer",
                    {"ours": "1"},
                ),
            )
            return
        commands = envelope_commands(lane.envelope, lane.utf8)
        lane.refusal, lane.handed_over, lane.result = None, False, None
        lane.state = ENVELOPE
        try:
            if conn.has_extn("pipelining"):
                lane.commands = []
                lane.expect = [(stage, ok) for _, stage, ok in commands]
                self._send(lane, b"".join(c for c, _, _ in commands))
            else:
                lane.commands = commands[1:]
                lane.expect = [commands[0][1:]]
                self._send(lane, commands[0][0])
        except Lost as exc:
            self._lost(lane, exc)

    def _reply(self, lane: Lane, code: int, text: bytes) -> None:
        stage, ok = lane.expect.pop(0)
        if code not in ok and 200 <= code < 400:
            # Neither a refusal nor the answer this command waits for: the replies are out of step
            # with the commands (a server that answered one twice), and none can be matched now.
            raise Lost(f"reply {code} to {stage} is out of step with the commands")
        state = lane.state
        if state == ENVELOPE:
            if ends_connection(code):
                # The server is closing, or said something that is not SMTP: the replies still
                # owed will not come (or cannot be trusted).
                lane.expect.clear()
                self._refused(lane, code, text, stage)
                return
            if stage == "DATA" and code == 354 and lane.refusal is not None:
                # A server that opened DATA after refusing the envelope: close it empty.
                lane.state = CLOSING_DATA
                lane.expect = [("end of DATA", (250,))]
                self._send(lane, b".\r\n")
                return
            if code not in ok and lane.refusal is None:
                lane.refusal = (code, text, stage)
                if lane.commands:  # one by one: nothing more is sent after a refusal
                    lane.commands = []
            if lane.commands:
                command, next_stage, next_ok = lane.commands.pop(0)
                lane.expect.append((next_stage, next_ok))
                self._send(lane, command)
                return
            if lane.expect:
                return
            if lane.refusal is not None:
                self._refused(lane, *lane.refusal)
            else:
                self._ready_for_content(lane)
        elif state == FINAL:
            self.b.count_message(lane)
            m = lane.msg
            assert m is not None
            if code == 250:
                self._finish(lane, DeliveryResult(m.recipient, "sent", m.message_id))
                return
            # The transaction ended with this reply, whatever it says (RFC 5321 §4.1.1.4): no
            # RSET, which would reach a server already in the next envelope (see _send_content).
            result = self.b.refusal(m, code, text, "end of DATA")  # a DeliveryConfigError stops the send
            if ends_connection(code):
                self._drop(lane)
            self._finish(lane, result)
        elif state == CLOSING_DATA:
            assert lane.refusal is not None
            self._refused(lane, *lane.refusal)
        elif state == RSET:
            assert lane.result is not None
            self._finish(lane, lane.result)

    def _ready_for_content(self, lane: Lane) -> None:
        """The server waits for the content: mark the message as going out, and send it. When
        that mark (or the lane's previous outcome, queued before it) is not durable yet, all but
        the end-of-data line goes out now, so the server takes the content in while the outcomes
        are committed; that line, which makes the server accept the message, waits until they
        are (a connection that ends before it delivers nothing)."""
        m = lane.msg
        assert m is not None
        mark = self.b.hand_over(m)
        previous = lane.durable
        if mark is not None and previous is not None:

            def both() -> None:
                mark()  # (a later commit than the previous outcome's: that one is durable too)
                previous()

            lane.durable = both
        elif mark is not None:
            lane.durable = mark
        if lane.durable is None:
            self._send_content(lane)
            return
        lane.state = HELD
        self._send(lane, memoryview(lane.data)[: -len(END_OF_DATA)])
        self.waiting_content.append(lane)

    def _send_content(self, lane: Lane) -> None:
        """Send the content (dot-stuffed, with the end-of-data line: RFC 5321 §4.5.2), or only
        what is left of it after a held one, and, when the server offers PIPELINING, the next
        message's envelope in the same write: its replies then come with this one's, and the lane
        does not wait for a round trip of its own."""
        if lane.state == HELD:
            # (What the socket did not take of the content yet goes first.)
            data = END_OF_DATA if lane.out is None else bytes(lane.out) + END_OF_DATA
        else:
            data = lane.data
        lane.state = CONTENT
        lane.expect = [("end of DATA", (250,))]
        ahead = self._take_ahead(lane)
        if ahead is None:
            self._send(lane, data)
        else:
            lane.ahead = ahead
            self._send(lane, b"".join([data, *(c for c, _, _ in ahead.commands)]))

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

    def _drop(self, lane: Lane) -> None:
        """End the lane's connection; a message whose envelope went out on it goes back to be
        sent on another."""
        self.b.drop(lane)
        if lane.ahead is not None:
            self.returned.append(lane.ahead.job)
            lane.ahead = None

    def _refused(self, lane: Lane, code: int, text: bytes, stage: str) -> None:
        m = lane.msg
        assert m is not None
        result = self.b.refusal(m, code, text, stage)  # a DeliveryConfigError stops the send
        if ends_connection(code):
            # An unreadable reply or a server that is closing: the connection is not trusted again.
            self._drop(lane)
            self._finish(lane, result)
            return
        lane.state, lane.result = RSET, result
        lane.expect = [("RSET", (250,))]
        try:
            self._send(lane, b"RSET\r\n")
        except Lost:
            self._drop(lane)
            self._finish(lane, result)

    def _lost(self, lane: Lane, exc: Lost) -> None:
        """The connection failed mid-transaction (see the module's notes for what it means)."""
        m = lane.msg
        state = lane.state
        self._drop(lane)
        if m is None:
            # Between messages (a reply nobody asked for after the last one): the message stands,
            # and only the connection, whose replies can no longer be matched, is done.
            lane.state = IDLE
            return
        if lane in self.waiting_content:
            self.waiting_content.remove(lane)
        where = self.b.where
        if state == RSET and lane.result is not None:
            self._finish(lane, lane.result)  # the refusal stands; only the RSET was lost
        elif exc.unreadable:
            self._finish(lane, DeliveryResult(m.recipient, "retry", None, f"SMTP server {where}: {exc}"))
        elif lane.handed_over:
            detail = f"connection to {where} lost after the message was sent: {exc}"
            self._finish(lane, DeliveryResult(m.recipient, "retry", None, detail, {"possibly_delivered": "1"}))
        elif lane.attempt == 1:
            # Nothing was handed over: open the connection again and send the message at once.
            lane.attempt = 2
            lane.state = ENVELOPE
            self._guarded(lane, self._begin, lane)
        else:
            self._finish(lane, DeliveryResult(m.recipient, "retry", None, f"connection to {where} lost: {exc}"))

    def _send(self, lane: Lane, data: bytes | memoryview) -> None:
        lane.out = memoryview(data)
        lane.deadline = time.monotonic() + self.timeout
        self._write(lane)

    def _write(self, lane: Lane) -> None:
        if lane.flush(self.selector) and lane.state == CONTENT:
            lane.handed_over = True
            lane.state = FINAL

    def _read(self, lane: Lane) -> None:
        for code, text in lane.replies():  # (raises if the server speaks while nothing is due)
            lane.deadline = time.monotonic() + self.timeout
            if lane.state == IDLE or not lane.expect:
                raise Lost(f"unexpected reply {code}", unreadable=True)
            self._reply(lane, code, text)


class LaneLoop(_Steps):
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
            j = self.returned.pop() if self.returned else next(self.work, None)
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
        j = self.returned.pop() if self.returned else next(self.work, None)
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
        lane's next content) and go on with the next message."""
        self.results[lane.job] = result
        lane.result, lane.msg, lane.state = None, None, IDLE
        # (A message that sent no content leaves the previous outcome's wait open: close it.)
        self._settle(lane)
        lane.durable = self.b.report(result)
        self._resume(lane)

    def _settle(self, lane: Lane) -> None:
        wait, lane.durable = lane.durable, None
        if wait is not None:
            wait()
