"""With PIPELINING, a lane sends the next message's envelope in the same write as the end of
the current content (digest.delivery.smtp_lanes), and nothing is lost, doubled or disturbed when
the current message is refused or its connection drops. The content itself goes out while the
commit before it runs; only its end waits for that commit."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from deliverykit import FakeClock, addresses, count_writes, newsletter, send_once, send_with_retries, smtp_toml
from smtpserver import RawServer, RecordingHandler, SMTPServer

from digest.delivery.sender import Sender
from digest.delivery.smtp_lanes import LaneLoop
from digest.delivery.smtp_wire import HELD, Lane
from digest.errors import DeliveryConfigError
from digest.pipeline import send_issue
from digest.store.deliveries import OutcomeWriter


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_each_content_ends_in_a_write_that_carries_the_next_envelope(
    write_config, tmp_path: Path, fixed_now, monkeypatch, pipelining: bool
) -> None:
    writes = count_writes(monkeypatch)
    subs = addresses(20)
    report, server, _, _ = send_once(
        write_config, tmp_path, fixed_now, RecordingHandler(pipelining=pipelining), subscribers=subs
    )
    assert report.counts == {"sent": 20}
    assert sorted(server.handler.per_recipient()) == subs and max(server.handler.per_recipient().values()) == 1
    for r in server.received:  # each message whole: its own To:, no command inside it
        assert r.message["To"] == r.rcpt_tos[0]
        assert b"MAIL FROM:" not in r.raw and b"RSET" not in r.raw
    bodies = [w for w in writes if b"\r\nSubject: " in w]
    assert len(bodies) == 20
    # Each content goes out but for its end-of-data line, which follows in a write of its own ...
    assert not any(w.endswith(b"\r\n.\r\n") or b"MAIL FROM:" in w for w in bodies)
    if pipelining:
        # ... with the next envelope behind it: the first envelope alone, then for each message
        # its content and the end of it with the next envelope (the last end alone).
        assert len(writes) == 1 + 20 * 2
        assert writes[2:-1:2] == [b".\r\nMAIL FROM:" + w.split(b"MAIL FROM:")[-1] for w in writes[2:-1:2]]
        assert all(b"\r\nRCPT TO:<" in w and w.endswith(b"\r\nDATA\r\n") for w in writes[2:-1:2])
        assert writes[-1] == b".\r\n"
    else:
        # ... alone: MAIL, RCPT and DATA one by one, the content, its end.
        assert len(writes) == 20 * 5
        assert writes[4::5] == [b".\r\n"] * 20


class _Events:
    """The writes of a send and its commits, in the order they happened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, bytes | tuple[int, tuple[str, ...]]]] = []
        send, write = LaneLoop._send, OutcomeWriter.write

        def sending(loop: LaneLoop, lane: Any, data: bytes) -> None:
            self.events.append(("write", bytes(data)))
            send(loop, lane, data)

        def committing(writer: OutcomeWriter, claim: str, outcomes: Any, **kw: Any) -> None:
            self.events.append(("commit", (len(outcomes), tuple(kw.get("handed", ())))))
            write(writer, claim, outcomes, **kw)

        monkeypatch.setattr(LaneLoop, "_send", sending)
        monkeypatch.setattr(OutcomeWriter, "write", committing)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_content_goes_out_while_the_commit_before_it_runs_and_ends_after_it(
    write_config, tmp_path: Path, fixed_now, monkeypatch, pipelining: bool
) -> None:
    """The server takes in the next content while the last outcome is committed, so the commit
    costs the connection no time of its own; only the end-of-data line, which makes the server
    accept the message, waits for it. So each message's content goes out before the commit that
    marks it as on its way (with the connection's previous outcome), and ends after it."""
    log = _Events(monkeypatch)
    subs = addresses(6)
    report, server, _, _ = send_once(
        write_config, tmp_path, fixed_now, RecordingHandler(pipelining=pipelining), subscribers=subs
    )
    assert report.counts == {"sent": 6} and len(server.received) == 6
    shown = []
    for kind, what in log.events:
        if kind == "commit":
            assert isinstance(what, tuple)
            shown.append(("commit", what[0], what[1]))
        elif isinstance(what, bytes) and b"\r\nSubject: " in what:
            to = re.search(rb"\r\nTo: (\S+)\r\n", what)
            assert to is not None
            shown.append(("content", to.group(1).decode()))
        elif isinstance(what, bytes) and what.startswith(b".\r\n"):
            shown.append(("end",))
    expected: list[tuple[Any, ...]] = []
    for i, who in enumerate(subs):
        # (The first message's mark goes alone; each later one with the previous outcome.)
        expected += [("content", who), ("commit", 0 if i == 0 else 1, (who,)), ("end",)]
    expected.append(("commit", 1, ()))  # the last outcome
    assert shown == expected


def test_a_content_the_socket_took_only_part_of_before_the_commit_arrives_whole(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """A server that reads slowly: its socket took only half of each content before the commit
    (and nothing more). The rest goes out after the commit, right before the end-of-data line, and
    every message arrives whole."""
    real = Lane.flush
    cut: list[int] = []

    def flush(lane: Lane, selector: Any) -> bool:
        if lane.state == HELD and lane.out is not None and len(lane.out) > 100:
            taken = len(lane.out) // 2
            lane.out, rest = lane.out[:taken], lane.out[taken:]
            real(lane, selector)
            lane.out = rest  # (and the selector is not told to wait for room: a full buffer)
            cut.append(len(rest))
            return False
        return real(lane, selector)

    monkeypatch.setattr(Lane, "flush", flush)
    subs = addresses(8)
    report, server, _, _ = send_once(
        write_config, tmp_path, fixed_now, RecordingHandler(pipelining=True), subscribers=subs, connections=2
    )
    assert report.counts == {"sent": 8}
    assert len(cut) == 8
    assert sorted(r.rcpt_tos[0] for r in server.received) == subs
    sizes = {len(r.raw) - len(r.rcpt_tos[0]) * r.raw.count(r.rcpt_tos[0].encode()) for r in server.received}
    assert len(sizes) == 1  # the same message but for the address
    for r in server.received:
        assert r.message["To"] == r.rcpt_tos[0]
        assert r.message.get_body(("html",)).get_content().rstrip().endswith("</html>")


def test_a_server_that_speaks_while_a_content_is_held_gets_no_message(write_config, tmp_path: Path, fixed_now) -> None:
    """A server that says 421 right after its 354, while the content waits for its end-of-data
    line: the content is never ended, so nothing is delivered; each message is a retry with the
    server's words, and the send waits for that retry instead of going on."""
    ended: list[bool] = []

    def speaks_during_content(conn: socket.socket) -> None:
        conn.settimeout(10)
        lines = conn.makefile("rb")
        conn.sendall(b"220 odd.example ESMTP\r\n")
        lines.readline()  # EHLO
        conn.sendall(b"250-odd.example\r\n250 PIPELINING\r\n")
        for _ in range(3):  # MAIL, RCPT and DATA, in one write
            lines.readline()
        conn.sendall(b"250 OK\r\n250 OK\r\n354 go ahead\r\n421 4.3.2 closing in the middle of your message\r\n")
        got = b"".join(iter(lambda: conn.recv(65536), b""))  # until the client closes
        ended.append(b"\r\n.\r\n" in got)

    subs = addresses(3)
    with RawServer(speaks_during_content) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        clock = FakeClock(fixed_now)
        retry = Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        report = send_issue(settings, store, slot, now=fixed_now, sender=retry, stop=lambda: bool(clock.sleeps))
    assert store.deliveries.counts(slot.key) == {"retry": 3}, report.message
    details = {r.detail for r in store.deliveries.with_status(slot.key, ("retry",))}
    assert details == {f"SMTP server 127.0.0.1:{server.port}: unexpected reply 421"}, details
    assert ended and not any(ended)  # no content was ever ended


class RefuseAtEndOfData(RecordingHandler):
    """Answers the end of DATA with a permanent refusal for chosen recipients."""

    def __init__(self, refuse_data: dict[str, str]) -> None:
        super().__init__(pipelining=True)
        self.refuse_data = refuse_data

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.refuse_data.get(envelope.rcpt_tos[0])
        if reply is not None:
            return reply
        return await super().handle_DATA(server, session, envelope)


def test_a_refusal_at_the_end_of_data_leaves_the_envelope_behind_it_alone(
    write_config, tmp_path: Path, fixed_now, monkeypatch
) -> None:
    """No RSET follows a refused content: the server is already in the next envelope, where an
    RSET would end that transaction or, after its DATA, become part of the next message."""
    writes = count_writes(monkeypatch)
    subs = addresses(12)
    refused = {subs[2]: "554 5.7.1 Message refused by policy", subs[7]: "552 5.3.4 Message too big"}
    report, server, _, _ = send_once(write_config, tmp_path, fixed_now, RefuseAtEndOfData(refused), subscribers=subs)
    assert report.counts == {"sent": 10, "failed": 2}
    assert [email for email, _ in report.failures] == sorted(refused)
    assert sorted(r.rcpt_tos[0] for r in server.received) == [s for s in subs if s not in refused]
    for r in server.received:
        assert r.message["To"] == r.rcpt_tos[0] and b"RSET" not in r.raw
    assert not any(b"RSET" in w for w in writes)
    # One connection all along (nothing was reopened): the first envelope, then a content and its
    # end (with the next envelope) for each message.
    assert len(writes) == 1 + 12 * 2


def test_connections_are_capped_and_reopened_when_pipelining(write_config, tmp_path: Path, fixed_now) -> None:
    """No envelope goes out behind the last content a connection may carry: that connection is
    closed after it, and the next message starts on a new one."""
    subs = addresses(50)
    report, server, _, _ = send_once(
        write_config,
        tmp_path,
        fixed_now,
        RecordingHandler(pipelining=True),
        subscribers=subs,
        more="[delivery.pace]\nmessages_per_connection = 10\n",
    )
    assert report.counts == {"sent": 50}
    assert server.handler.connections == 5
    assert max(server.handler.per_recipient().values()) == 1


class DropAtEndOfData(RecordingHandler):
    """Drops the connection, without keeping the message, when the content for ``victim`` ends —
    the first time only. The next message's envelope was already on its way."""

    def __init__(self, victim: str) -> None:
        super().__init__(pipelining=True)
        self.victim = victim
        self.dropped = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos[0] == self.victim and not self.dropped:
            self.dropped += 1
            server.transport.abort()
            return "250 OK"  # never reaches the client
        return await super().handle_DATA(server, session, envelope)


def test_a_connection_lost_after_the_content_sends_the_envelope_behind_it_again_elsewhere(
    write_config, tmp_path: Path, fixed_now
) -> None:
    subs = addresses(10)
    handler = DropAtEndOfData(victim=subs[3])
    report, clock = send_with_retries(
        write_config, tmp_path, fixed_now, handler, subscribers=subs, connections=1, max_attempts=5
    )
    assert handler.dropped == 1
    assert report.counts == {"sent": 10}
    per = handler.per_recipient()
    assert sorted(per) == subs and max(per.values()) == 1
    # The message whose envelope followed the lost content went out on the next connection at
    # once; only the lost one waited for a retry (it might have arrived: counted as interrupted).
    assert handler.connections == 2
    assert clock.sleeps


class RefuseSenderOnce(RecordingHandler):
    """Refuses the sender (a settings problem: the send stops) at the ``n``-th MAIL only: the other
    connections' envelopes are accepted, and their servers wait for the content."""

    def __init__(self, n: int) -> None:
        super().__init__(pipelining=True)
        self.n = n
        self.mails = 0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any) -> str:
        with self.lock:
            self.mails += 1
            refuse = self.mails == self.n
        if refuse:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        return "250 OK"


def test_a_send_stopped_by_the_settings_leaves_the_messages_behind_contents_pending(
    write_config, tmp_path: Path, fixed_now
) -> None:
    """When one connection learns the sender is refused, others may have an envelope out behind
    their content. The send stops at once, with no error of its own; what was accepted is sent,
    and the messages whose envelopes were out stay pending for the next send. (Their connections
    are closed without QUIT, which a server that has answered DATA would read as content.)"""
    subs = addresses(40)
    handler = RefuseSenderOnce(12)
    with SMTPServer(handler) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, connections=3, more="timeout = 20"),
            subscribers=subs,
            now=fixed_now,
        )
        started = time.monotonic()
        with pytest.raises(DeliveryConfigError, match="refused the sender"):
            send_issue(settings, store, slot, now=fixed_now)
        took = time.monotonic() - started
    assert took < 10, f"the send took {took:.0f} s to stop"
    counts = store.deliveries.counts(slot.key)
    assert counts.get("sent", 0) == len(server.received) and sum(counts.values()) == 40
    assert set(counts) <= {"sent", "pending"}


class ExtraLineAfterData(RecordingHandler):
    """Answers one end of DATA with its 250 and then a second reply nobody asked for."""

    def __init__(self, victim: str, pipelining: bool) -> None:
        super().__init__(pipelining=pipelining)
        self.victim = victim

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if envelope.rcpt_tos[0] == self.victim:
            return reply + "\r\n250 and one more thing"
        return reply


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_a_reply_nobody_asked_for_ends_only_that_connection(
    write_config, tmp_path: Path, fixed_now, pipelining: bool
) -> None:
    """A server that sends one reply too many after a message: the message stands; the extra
    reply is taken for the next command's (or arrives between messages), so the replies no longer
    match the commands, and that connection is closed. The message whose envelope it was goes out
    on a new connection (nothing of it was handed over), never marked failed for the server's slip."""
    subs = addresses(12)
    handler = ExtraLineAfterData(subs[4], pipelining)
    report, _clock = send_with_retries(
        write_config, tmp_path, fixed_now, handler, subscribers=subs, connections=1, max_attempts=5
    )
    assert report.counts == {"sent": 12}, report.message
    assert sorted(handler.per_recipient()) == subs and max(handler.per_recipient().values()) == 1
    assert handler.connections == 2


@pytest.mark.parametrize("smtputf8", [False, True], ids=["without-smtputf8", "with-smtputf8"])
def test_an_address_that_needs_smtputf8_goes_behind_a_content_only_when_the_server_offers_it(
    write_config, tmp_path: Path, fixed_now, monkeypatch, smtputf8: bool
) -> None:
    """The UTF-8 address comes late in the batch, so its envelope would go out behind a content:
    with SMTPUTF8 offered it does (MAIL … SMTPUTF8) and arrives; without, the message is decided
    on its own, as failed with the reason, and nobody else's message is touched."""
    writes = count_writes(monkeypatch)
    subs = addresses(6)
    late = "zoë@example.org"
    with SMTPServer(RecordingHandler(pipelining=True), smtputf8=smtputf8) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        store.subscribers.add([(late, "Zoë"), ("zz@example.org", None)], now=fixed_now)
        report = send_issue(settings, store, slot, now=fixed_now)
    per = server.handler.per_recipient()
    assert max(per.values()) == 1
    if smtputf8:
        assert report.counts == {"sent": 8}
        assert any(
            w.endswith(f"MAIL FROM:<digest@news.example.org> SMTPUTF8\r\nRCPT TO:<{late}>\r\nDATA\r\n".encode())
            and w.startswith(b".\r\n")  # (the end of a content)
            for w in writes
        )
    else:
        assert report.counts == {"sent": 7, "failed": 1}
        assert [e for e, d in report.failures] == [late] and "needs SMTPUTF8" in report.failures[0][1]
        assert not any(late.encode() in w for w in writes)
    assert set(per) == {*subs, "zz@example.org", *([late] if smtputf8 else [])}
