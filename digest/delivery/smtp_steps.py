"""The steps of one message's SMTP transaction on a lane, as digest.delivery.smtp_lanes runs
them: the envelope, the content (held back by its end-of-data line while the outcomes before it
are committed), the replies, and what a refusal or a lost connection means for the message."""

from __future__ import annotations

import selectors
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from digest.delivery.mime import END_OF_DATA
from digest.delivery.smtp_wire import (
    CLOSING_DATA,
    CONTENT,
    ENVELOPE,
    FINAL,
    HELD,
    IDLE,
    RSET,
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


class TransactionSteps(ABC):
    """The steps of one message's transaction on a lane; the lane loop
    (digest.delivery.smtp_lanes.LaneLoop) schedules them and decides what follows a message's
    end."""

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
                self._send(lane, END_OF_DATA)
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
