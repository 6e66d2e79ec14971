from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trustme
from deliverykit import FakeClock, addresses, count_writes, newsletter, send_once, send_with_retries, smtp_toml
from smtpserver import FaultyHandler, RawServer, RecordingHandler, SMTPServer

from digest.delivery.base import OutgoingMessage
from digest.delivery.mime import smtp_data
from digest.delivery.sender import Sender
from digest.delivery.smtp import angle_address
from digest.errors import DeliveryConfigError
from digest.pipeline import send_issue

UNSUB = re.compile(r"<(https://news\.example\.org/unsubscribe\?token=[^>]+)>")


def test_smtp_round_trip(write_config, tmp_path: Path, fixed_now) -> None:
    subs = ["ana@example.org", "bo@example.org", "cy@example.org"]
    with SMTPServer() as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=subs, now=fixed_now
        )
        report = send_issue(settings, store, slot, now=fixed_now)
        assert report.outcome == "sent", report.message
        assert report.counts == {"sent": 3}
        received = list(server.received)
        # A second send for the same slot sends nothing.
        again = send_issue(settings, store, slot, now=fixed_now)
        assert again.outcome == "already-sent"
        assert len(server.received) == 3

    assert sorted(r.rcpt_tos[0] for r in received) == subs
    tokens = set()
    for r in received:
        msg = r.message
        assert r.mail_from == "digest@news.example.org"
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        for p in msg.iter_parts():
            assert p.get_content_charset() == "utf-8"
            assert p["Content-Transfer-Encoding"] == "quoted-printable"
        assert msg["To"] == r.rcpt_tos[0]
        assert msg["From"] == "Test Weekly <digest@news.example.org>"
        assert msg["Reply-To"] == "editor@news.example.org"
        assert msg["Date"]
        assert re.fullmatch(r"<[^@>]+@news\.example\.org>", msg["Message-ID"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        m = UNSUB.search(msg["List-Unsubscribe"])
        assert m
        tokens.add(m.group(1))
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for i in range(3):
            assert f"Article number {i} <about> & more" in text
            assert f"Article number {i} &lt;about&gt; &amp; more" in html
            assert f"https://news.example.org/a{i}?x=1&amp;y=2" in html
        assert m.group(1) in text
        assert m.group(1) in html
        assert r.rcpt_tos[0] in text
        head, body = r.raw.split(b"\r\n\r\n", 1)
        # Quoted-printable lines stay within RFC 2045's 76; header lines within RFC 5322's 998.
        assert max(len(line) for line in body.splitlines()) <= 76
        assert max(len(line) for line in head.splitlines()) <= 998
        # The unsubscribe URL is written as it is, where mail clients look for it (RFC 2369).
        assert b"List-Unsubscribe: <" + m.group(1).encode() + b">," in head
    assert len(tokens) == 3, "each recipient has an own unsubscribe URL"


def test_a_relay_without_tls_loads_no_certificates(write_config, tmp_path: Path, fixed_now, monkeypatch) -> None:
    # security = "none" (a relay on localhost) never uses a TLS context; loading the system's CA
    # certificates for one cost a twentieth of a second at each send's start.
    def no_context(*args: object, **kwargs: object) -> None:
        raise AssertionError("a TLS context was made for a connection without TLS")

    monkeypatch.setattr("ssl.create_default_context", no_context)
    report, server, _, _ = send_once(
        write_config, tmp_path, fixed_now, RecordingHandler(), subscribers=["ana@example.org", "bo@example.org"]
    )
    assert report.counts == {"sent": 2}, report.message
    assert sorted(r.rcpt_tos[0] for r in server.received) == ["ana@example.org", "bo@example.org"]


def _digest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_thousand_subscribers_get_a_thousand_distinct_messages_once(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(1000)
    with SMTPServer() as server:
        _, store, _, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=4), subscribers=subs, now=fixed_now
        )
        first = _digest("--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
        assert first.returncode == 0, first.stderr
        assert "issue 2025-W33 sent: 1000 delivered, 0 failed" in first.stdout
        second = _digest("--config", str(cfg), "send", "--as-of", "2025-08-11T10:00")
        assert second.returncode == 0, second.stderr
        assert "already sent (1000 delivered); nothing to send" in second.stdout
        received = list(server.received)
        connections = server.handler.connections
    assert len(received) == 1000
    assert sorted(r.rcpt_tos[0] for r in received) == subs
    urls = {UNSUB.search(r.message["List-Unsubscribe"]).group(1) for r in received}  # type: ignore[union-attr]
    assert len(urls) == 1000
    assert len({r.raw for r in received}) == 1000
    for r in received[:50]:
        url = UNSUB.search(r.message["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
        assert url in r.message.get_body(("plain",)).get_content()
    # Four connections, each reused for many messages (100 each by default), not one per message.
    assert 4 <= connections <= 14
    assert store.deliveries.counts("2025-W33") == {"sent": 1000}


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_flaky_server_gets_everything_once(
    write_config, tmp_path: Path, fixed_now, pipelining: bool, monkeypatch
) -> None:
    """421/451 for 20% of transactions, 5% of connections dropped: all delivered, none twice."""
    writes = count_writes(monkeypatch)
    subs = addresses(400)
    handler = FaultyHandler(temporary=0.20, drops=0.05, seed=11, pipelining=pipelining)
    report, clock = send_with_retries(
        write_config, tmp_path, fixed_now, handler, subscribers=subs, connections=3, max_attempts=40
    )
    assert report.outcome == "sent", report.message
    assert report.counts == {"sent": 400}
    per = handler.per_recipient()
    assert sorted(per) == subs
    assert max(per.values()) == 1, "no recipient got a message twice"
    kinds = {k.split(" at ")[0] for k in handler.faults}
    assert kinds == {"drop", "421", "451"}, handler.faults
    assert sum(handler.faults.values()) >= 80
    # Retries waited (on the injected clock) rather than hammering the server.
    assert clock.sleeps and min(clock.sleeps) > 0
    # Writes that carried a whole envelope (MAIL, RCPT and DATA) only when the server pipelines.
    pipelined = [
        w for w in writes if w.startswith(b"MAIL FROM:") and b"\r\nRCPT TO:" in w and w.endswith(b"\r\nDATA\r\n")
    ]
    assert bool(pipelined) == pipelining


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_refused_recipients_fail_with_the_servers_words_rest_delivered(
    write_config, tmp_path: Path, fixed_now, pipelining: bool
) -> None:
    subs = addresses(30)
    refuse = {
        subs[3]: "550 5.1.1 No such user here",
        subs[17]: "553 5.7.1 Relaying denied for this recipient",
    }
    with SMTPServer(RecordingHandler(refuse=refuse, pipelining=pipelining)) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=subs, now=fixed_now
        )
        report = send_issue(settings, store, slot, now=fixed_now)
    assert report.outcome == "sent"
    assert report.counts == {"sent": 28, "failed": 2}
    assert report.failures == sorted(refuse.items())
    assert sorted(r.rcpt_tos[0] for r in server.received) == [s for s in subs if s not in refuse]
    # A mailbox that does not exist (5.1.x) marks the subscriber bounced; a policy refusal does not.
    status = {r.email: r.status for r in store.subscribers.all()}
    assert status[subs[3]] == "bounced" and status[subs[17]] == "active"


def test_connections_are_capped_and_reopened(write_config, tmp_path: Path, fixed_now) -> None:
    subs = addresses(50)
    extra = (
        smtp_toml(0, connections=1).replace("port = 0", "port = {port}")
        + "[delivery.pace]\nmessages_per_connection = 10\n"
    )
    with SMTPServer() as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=extra.format(port=server.port), subscribers=subs, now=fixed_now
        )
        report = send_issue(settings, store, slot, now=fixed_now)
    assert report.counts == {"sent": 50}
    assert server.handler.connections == 5


def test_sender_refused_stops_the_send_with_nothing_marked_sent(write_config, tmp_path: Path, fixed_now) -> None:
    class RefuseSender(RecordingHandler):
        async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
            return "553 5.7.1 Sender address rejected: not owned by user"

    with SMTPServer(RefuseSender()) as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=addresses(5), now=fixed_now
        )
        with pytest.raises(
            DeliveryConfigError,
            match="refused the sender digest@news.example.org at MAIL: 553 5.7.1 Sender address rejected",
        ):
            send_issue(settings, store, slot, now=fixed_now)
    assert store.deliveries.counts(slot.key) == {"pending": 5}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_tls(ca: trustme.CA):  # type: ignore[no-untyped-def]
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_certificate_check_and_login(
    write_config, tmp_path: Path, fixed_now, ca, security: str, monkeypatch
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    login = f'username = "digest"\npassword_env = "TEST_SMTP_PASSWORD"\nca_file = "{ca_file}"\n'
    with SMTPServer(tls_context=_server_tls(ca), implicit_tls=security == "tls", logins={"digest": "s3cret"}) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, security=security, more=login),
            subscribers=addresses(6),
            now=fixed_now,
        )
        report = send_issue(settings, store, slot, now=fixed_now)
    assert report.counts == {"sent": 6}
    assert len(server.received) == 6


def test_untrusted_certificate_stops_the_send(write_config, tmp_path: Path, fixed_now, ca) -> None:
    with SMTPServer(tls_context=_server_tls(ca)) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, security="starttls"),
            subscribers=addresses(3),
            now=fixed_now,
        )
        with pytest.raises(DeliveryConfigError, match="certificate check failed .*delivery.smtp.ca_file"):
            send_issue(settings, store, slot, now=fixed_now)
    assert store.deliveries.counts(slot.key) == {"pending": 3}
    assert server.received == []


def test_wrong_password_stops_the_send(write_config, tmp_path: Path, fixed_now, ca, monkeypatch) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    login = f'username = "digest"\npassword_env = "TEST_SMTP_PASSWORD"\nca_file = "{ca_file}"\n'
    with SMTPServer(tls_context=_server_tls(ca), logins={"digest": "s3cret"}) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, security="starttls", more=login),
            subscribers=addresses(3),
            now=fixed_now,
        )
        with pytest.raises(DeliveryConfigError, match="refused the login for 'digest': 535"):
            send_issue(settings, store, slot, now=fixed_now)
    assert store.deliveries.counts(slot.key) == {"pending": 3}


@pytest.mark.parametrize(
    "body",
    [
        b"Subject: dots\r\n\r\n.first line\r\nmiddle\r\n..two\r\n.\r\nend\r\n",
        b"Subject: no dots\r\n\r\nplain line\r\nend.\r\n",
    ],
)
def test_lines_that_start_with_a_dot_arrive_intact(write_config, tmp_path: Path, fixed_now, monkeypatch, body) -> None:
    """Dot-stuffing (RFC 5321 4.5.2): the server gets back exactly the message bytes, with or
    without lines to stuff."""
    monkeypatch.setattr(OutgoingMessage, "as_bytes", lambda self: body)
    monkeypatch.setattr(OutgoingMessage, "smtp_data", lambda self: smtp_data(body))
    with SMTPServer() as server:
        settings, store, slot, _ = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=["ana@example.org"], now=fixed_now
        )
        report = send_issue(settings, store, slot, now=fixed_now)
        assert report.counts == {"sent": 1}, report.message
        (got,) = server.received
    assert got.raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") == body


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.org",
        "o'brien&co@example.org",
        "first.last+tag=x@sub.example-mail.org",
        "bounces+ana=example.org@news.example.org",
        "x@xn--exmple-cua.org",
        "a b@example.org",
        '"quoted local"@example.org',
        "a<b@example.org",
        "user@[192.0.2.1]",
        "no-at-sign",
    ],
)
def test_envelope_addresses_are_written_as_smtplib_writes_them(address: str) -> None:
    """The envelope's <address> is built directly for a plain address (parsing each one cost more
    than the rest of the envelope), and must still be exactly what smtplib.quoteaddr writes."""
    import smtplib

    assert angle_address(address) == smtplib.quoteaddr(address)


def _silent_after_hello(conn: socket.socket) -> None:
    """Greet, answer EHLO, then never answer again (a relay that hung); the connection stays open
    until the test ends."""
    conn.sendall(b"220 hung.example ESMTP\r\n")
    conn.recv(1024)  # EHLO
    conn.sendall(b"250-hung.example\r\n250 PIPELINING\r\n")


def test_a_server_that_stops_answering_times_out_and_the_messages_wait_for_a_retry(
    write_config, tmp_path: Path, fixed_now
) -> None:
    """Each connection waits at most delivery.smtp.timeout for a reply; then the message is a
    retry (nothing was handed over) and the send ends instead of hanging."""
    with RawServer(_silent_after_hello) as server:
        settings, store, slot, _ = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, connections=2, more="timeout = 0.5"),
            subscribers=addresses(2),
            now=fixed_now,
        )
        clock = FakeClock(fixed_now)
        retry = Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        report = send_issue(settings, store, slot, now=fixed_now, sender=retry, stop=lambda: bool(clock.sleeps))
    counts = store.deliveries.counts(slot.key)
    assert counts == {"retry": 2}, report.message
    details = {r.detail for r in store.deliveries.with_status(slot.key, ("retry",))}
    assert all(d is not None and "timed out" in d for d in details), details


def test_content_larger_than_the_socket_takes_goes_out_in_pieces_when_it_is_writable() -> None:
    """A non-blocking socket takes a big content in pieces: flush() writes what it can, asks the
    selector to watch for the socket to be writable, and finishes on later calls — the bytes the
    peer gets are exactly the content."""
    import selectors
    import threading

    from digest.delivery.smtp_wire import READ, WRITE, Lane

    ours, peer = socket.socketpair()
    selector = selectors.DefaultSelector()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        lane = Lane(0)
        lane.sock, lane.events = ours, READ
        selector.register(ours, READ, lane)
        content = bytes(range(256)) * 4096  # 1 MB
        lane.out = memoryview(content)
        assert lane.flush(selector) is False  # the socket took only part of it
        assert lane.events == READ | WRITE and lane.out is not None and 0 < len(lane.out) < len(content)
        got = bytearray()

        def read_all() -> None:
            while len(got) < len(content):
                got.extend(peer.recv(65536))

        reader = threading.Thread(target=read_all)
        reader.start()
        rounds = 1
        while not lane.flush(selector):
            rounds += 1
            assert selector.select(timeout=10), "the socket became writable"
        reader.join(timeout=10)
        assert bytes(got) == content and rounds > 1
        assert lane.out is None and lane.events == READ  # back to waiting for the reply
    finally:
        ours.close()
        peer.close()
        selector.close()
