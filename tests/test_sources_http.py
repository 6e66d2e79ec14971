"""Polite fetching, shown against real HTTP servers on 127.0.0.1 (tests/httpserver.py).

Time is controlled (FakeTime) wherever the fetcher would wait; the only real waits are the short
socket timeouts of the server that never answers.
"""

from __future__ import annotations

import gzip
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from httpserver import FakeTime, Reply, Request, TestServer

from digest.config import load_config
from digest.pipeline import ingest
from digest.sources import feed as feed_module
from digest.sources.http import Fetcher, FetchError, FetchPolicy
from digest.store import Store

NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def rss(*items: tuple[str, str, str], title: str = "Test feed") -> bytes:
    """An RSS 2.0 feed of (guid, title, description) items."""
    body = "".join(
        f"<item><guid>https://news.example.org/{g}</guid><title>{t}</title><link>https://news.example.org/{g}</link>"
        f"<pubDate>Fri, 08 Aug 2025 10:00:00 GMT</pubDate><description>{d}</description></item>"
        for g, t, d in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title><link>https://news.example.org/</link>{body}</channel></rss>'.encode()


FEED = rss(("a", "First story", "The first story's text."), ("b", "Second story", "The second story's text."))


def feeds_config(write_config, *urls: str, extra: str = "") -> Path:
    sources = "".join(f'\n[[sources]]\nname = "feed{i}"\nkind = "feed"\nurl = "{u}"\n' for i, u in enumerate(urls))
    path = write_config(sources + extra)
    # Only the feeds: drop the folder source of the base config.
    path.write_text(
        path.read_text().replace('[[sources]]\nname = "articles"\nkind = "folder"\npath = "content"\n', "", 1)
    )
    return path


def fetcher(fake: FakeTime, **policy: object) -> Fetcher:
    return Fetcher(FetchPolicy(**policy), clock=fake.clock, sleep=fake.sleep)  # type: ignore[arg-type]


# --- conditional GET ------------------------------------------------------------------------------


def test_304_on_a_conditional_get_means_no_reparse(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    state = {"body": FEED, "etag": '"v1"'}

    def feed(req: Request) -> Reply:
        if req.headers.get("if-none-match") == state["etag"]:
            return Reply(304, headers={"ETag": state["etag"]})
        return Reply(
            200,
            state["body"],
            {
                "ETag": state["etag"],
                "Last-Modified": "Fri, 08 Aug 2025 10:00:00 GMT",
                "Content-Type": "application/rss+xml",
            },
        )

    parses: list[int] = []
    real_parse = feed_module.parse_feed
    monkeypatch.setattr(feed_module, "parse_feed", lambda *a, **k: parses.append(1) or real_parse(*a, **k))
    with TestServer({"/feed.xml": feed}) as server:
        settings = load_config(feeds_config(write_config, server.url("/feed.xml")))
        store = Store(settings.state_url)
        fake = FakeTime()
        first = ingest(settings, store, now=NOW, fetcher=fetcher(fake))
        assert (first.sources[0].seen, first.sources[0].new) == (2, 2)
        second = ingest(settings, store, now=NOW + timedelta(hours=1), fetcher=fetcher(fake))
        assert second.sources[0].not_modified and second.sources[0].error is None
        assert len(parses) == 1, "a 304 must not be parsed"
        sent = server.requests[1].headers
        assert sent["if-none-match"] == '"v1"'
        assert sent["if-modified-since"] == "Fri, 08 Aug 2025 10:00:00 GMT"
        (row,) = store.sources.all()
        assert row.etag == '"v1"' and row.failures == 0 and row.last_note == "not modified since the last read"

        # The publisher edits the first story: a new ETag, a full read, the article updated in place.
        state["body"] = rss(
            ("a", "First story (corrected)", "The first story's text, corrected."),
            ("b", "Second story", "The second story's text."),
        )
        state["etag"] = '"v2"'
        third = ingest(settings, store, now=NOW + timedelta(hours=2), fetcher=fetcher(fake))
        assert (third.sources[0].new, third.sources[0].updated) == (0, 1)
        assert len(parses) == 2
        titles = sorted(a.title for a in store.articles.all())
        assert titles == ["First story (corrected)", "Second story"]


# --- retries ------------------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured() -> None:
    answers = iter([Reply(429, headers={"Retry-After": "7"}), Reply(200, FEED)])
    with TestServer({"/feed.xml": lambda req: next(answers)}) as server:
        fake = FakeTime()
        res = fetcher(fake, host_delay=0.5).get(server.url("/feed.xml"), source="s")
    assert res.status == 200 and res.body == FEED
    assert len(server.requests) == 2
    assert fake.sleeps == [7.0], "waited exactly as long as Retry-After asked (longer than the host delay)"


def test_retry_after_as_an_http_date_is_measured_against_the_servers_date() -> None:
    date = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)
    answers = iter(
        [
            Reply(
                503,
                headers={
                    "Date": format_datetime(date, usegmt=True),
                    "Retry-After": format_datetime(date + timedelta(seconds=30), usegmt=True),
                },
            ),
            Reply(200, FEED),
        ]
    )
    with TestServer({"/f": lambda req: next(answers)}) as server:
        fake = FakeTime()
        fetcher(fake, host_delay=0).get(server.url("/f"), source="s")
    assert fake.sleeps == [30.0]


def test_5xx_backs_off_exponentially_and_gives_up_after_the_bounded_retries() -> None:
    with TestServer({"/f": lambda req: Reply(502)}) as server:
        fake = FakeTime()
        with pytest.raises(FetchError) as err:
            fetcher(fake, host_delay=0, retries=3, backoff=2.0).get(server.url("/f"), source="s")
    assert len(server.requests) == 4
    assert fake.sleeps == [2.0, 4.0, 8.0]
    assert "HTTP 502 after 4 tries" in str(err.value) and "source 's'" in str(err.value)


def test_a_retry_after_beyond_the_limit_is_not_waited_for() -> None:
    with TestServer({"/f": lambda req: Reply(429, headers={"Retry-After": "86400"})}) as server:
        fake = FakeTime()
        with pytest.raises(FetchError, match="asked to wait 86400 s"):
            fetcher(fake, max_retry_after=300).get(server.url("/f"), source="s")
    assert fake.sleeps == [] and len(server.requests) == 1


# --- redirects ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, moves", [(301, True), (308, True), (302, False), (307, False)])
def test_a_permanent_redirect_updates_the_stored_url_and_a_temporary_one_does_not(
    write_config, status: int, moves: bool
) -> None:
    routes = {
        "/old.xml": lambda req: Reply(status, headers={"Location": "/new.xml"}),
        "/new.xml": lambda req: Reply(200, FEED),
    }
    with TestServer(routes) as server:
        settings = load_config(feeds_config(write_config, server.url("/old.xml")))
        store = Store(settings.state_url)
        first = ingest(settings, store, now=NOW, fetcher=fetcher(FakeTime()))
        assert first.sources[0].new == 2
        assert first.sources[0].moved_to == (server.url("/new.xml") if moves else None)
        (row,) = store.sources.all()
        assert row.moved_to == first.sources[0].moved_to and row.location == server.url("/old.xml")
        ingest(settings, store, now=NOW, fetcher=fetcher(FakeTime()))
    if moves:
        assert server.paths() == ["/old.xml", "/new.xml", "/new.xml"], "the second run goes to the new URL directly"
    else:
        assert server.paths() == ["/old.xml", "/new.xml"] * 2


def test_a_301_after_a_302_is_not_a_move() -> None:
    routes = {
        "/a": lambda req: Reply(302, headers={"Location": "/b"}),
        "/b": lambda req: Reply(301, headers={"Location": "/c"}),
        "/c": lambda req: Reply(200, FEED),
    }
    with TestServer(routes) as server:
        res = fetcher(FakeTime(), host_delay=0).get(server.url("/a"), source="s")
    assert res.url == server.url("/c") and res.moved_to is None


# --- timeouts: one slow host does not hold up the others ----------------------------------------------


def test_a_server_that_never_answers_times_out_without_holding_up_other_sources(write_config) -> None:
    good_served = threading.Event()
    release = threading.Event()
    seen_while_hanging: list[bool] = []

    def hang(req: Request) -> Reply:
        # Hold the request; note whether the other source was served meanwhile.
        seen_while_hanging.append(good_served.wait(timeout=10))
        release.wait(timeout=10)
        return Reply(200, FEED)

    def good(req: Request) -> Reply:
        good_served.set()
        return Reply(200, rss(("c", "Third story", "Text.")))

    with TestServer({"/feed.xml": hang}) as slow, TestServer({"/feed.xml": good}) as fast:
        settings = load_config(
            feeds_config(
                write_config,
                slow.url("/feed.xml"),
                fast.url("/feed.xml"),
                extra="\n[fetch]\ntimeout = 0.5\nworkers = 4\n",
            )
        )
        store = Store(settings.state_url)
        try:
            report = ingest(settings, store, now=NOW)
        finally:
            release.set()
    slow_outcome, fast_outcome = report.sources
    assert slow_outcome.error and "timed out" in slow_outcome.error and slow.url("/feed.xml") in slow_outcome.error
    assert fast_outcome.error is None and fast_outcome.new == 1
    assert seen_while_hanging == [True], "the other host was fetched while this one hung"
    assert [a.title for a in store.articles.all()] == ["Third story"]
    rows = {r.name: r for r in store.sources.all()}
    assert rows["feed0"].failures == 1 and "timed out" in rows["feed0"].last_error
    assert rows["feed1"].failures == 0 and rows["feed1"].last_success is not None


def test_a_response_that_trickles_past_the_deadline_is_abandoned() -> None:
    fake = FakeTime()

    def slow_clock() -> float:
        # Each look at the clock finds ten more seconds gone: a body that takes minutes to arrive.
        fake.now += 10
        return fake.now

    with TestServer({"/big": lambda req: Reply(200, b"x" * 400_000, chunked=True)}) as server:
        f = Fetcher(FetchPolicy(deadline=30, host_delay=0), clock=slow_clock, sleep=fake.sleep)
        with pytest.raises(FetchError, match="took longer than 30 s"):
            f.get(server.url("/big"), source="s")


# --- size, compression, identification ------------------------------------------------------------


def test_an_oversized_response_is_refused() -> None:
    big = b"<rss>" + b"x" * 300_000 + b"</rss>"
    routes = {
        "/declared": lambda req: Reply(200, big),
        "/chunked": lambda req: Reply(200, big, chunked=True),
        "/bomb": lambda req: Reply(200, b"<rss>" + b" " * 5_000_000 + b"</rss>", gzip=True),
    }
    with TestServer(routes) as server:
        f = fetcher(FakeTime(), max_bytes=100_000, host_delay=0)
        with pytest.raises(FetchError, match=r"is 0\.3 MiB, over the 0\.0953674 MiB limit; refused"):
            f.get(server.url("/declared"), source="s")
        with pytest.raises(FetchError, match="larger than the 0.0953674 MiB limit; refused"):
            f.get(server.url("/chunked"), source="s")
        # A few kilobytes on the wire that would unpack to 5 MB: the decoded size is what counts.
        with pytest.raises(FetchError, match="larger than"):
            f.get(server.url("/bomb"), source="s")


def test_gzip_is_accepted_and_decoded() -> None:
    with TestServer({"/f": lambda req: Reply(200, FEED, gzip=True)}) as server:
        res = fetcher(FakeTime()).get(server.url("/f"), source="s")
    assert "gzip" in server.requests[0].headers["accept-encoding"]
    assert res.headers["content-encoding"] == "gzip" and res.body == FEED
    assert len(gzip.compress(FEED)) < len(FEED)


def test_user_agent_is_descriptive_and_configurable(write_config) -> None:
    with TestServer({"/a.xml": lambda req: Reply(200, FEED), "/b.xml": lambda req: Reply(200, FEED)}) as server:
        path = feeds_config(
            write_config, server.url("/a.xml"), server.url("/b.xml"), extra="\n[fetch]\nhost_delay = 0\n"
        )
        path.write_text(
            path.read_text().replace(
                'url = "' + server.url("/b.xml") + '"',
                'url = "' + server.url("/b.xml") + '"\nuser_agent = "Mozilla/5.0 (compatible; TestWeekly)"',
            )
        )
        settings = load_config(path)
        ingest(settings, Store(settings.state_url), now=NOW, fetcher=None)
    agents = {r.path: r.headers["user-agent"] for r in server.requests}
    assert agents["/a.xml"].startswith("digest/") and "+https://news.example.org" in agents["/a.xml"]
    assert agents["/b.xml"] == "Mozilla/5.0 (compatible; TestWeekly)"


def test_errors_name_the_source_the_url_and_what_to_do() -> None:
    with TestServer({"/gone": lambda req: Reply(410), "/forbidden": lambda req: Reply(403)}) as server:
        f = fetcher(FakeTime(), host_delay=0)
        with pytest.raises(FetchError) as gone:
            f.get(server.url("/gone"), source="news")
        with pytest.raises(FetchError) as forbidden:
            f.get(server.url("/forbidden"), source="news")
        with pytest.raises(FetchError) as missing:
            f.get(server.url("/nothing-here"), source="news")
    assert (
        str(gone.value)
        == f"source 'news': {server.url('/gone')} answered HTTP 410; the site says it is gone for good; remove the source"
    )
    assert "set user_agent for this source" in str(forbidden.value)
    assert "HTTP 404; not found; check the URL" in str(missing.value)


def test_connection_refused_is_one_line() -> None:
    with TestServer() as server:
        url = server.url("/feed.xml")
    # The server is closed now: nothing listens on that port.
    with pytest.raises(FetchError) as err:
        fetcher(FakeTime(), retries=0).get(url, source="news")
    assert "\n" not in str(err.value) and "cannot connect to" in str(err.value) and url in str(err.value)
    # Words, not urllib3's nested reprs (NewConnectionError("HTTPConnection(host=...).
    assert (
        str(err.value)
        == f"source 'news': cannot connect to {url}: connection refused; is the server running and the port right?"
    )


# --- per-host delay and the bounded pool --------------------------------------------------------------


def test_requests_to_one_host_are_spaced_by_the_host_delay() -> None:
    with (
        TestServer({"/a": lambda req: Reply(200, b"a"), "/b": lambda req: Reply(200, b"b")}) as one,
        TestServer({"/c": lambda req: Reply(200, b"c")}) as other,
    ):
        fake = FakeTime()
        f = fetcher(fake, host_delay=2.5)
        f.get(one.url("/a"), source="s")
        f.get(other.url("/c"), source="s")
        assert fake.sleeps == [], "a different host does not wait"
        f.get(one.url("/b"), source="s")
        assert fake.sleeps == [2.5]


def test_different_hosts_are_fetched_concurrently_in_a_bounded_pool(write_config) -> None:
    servers = [TestServer() for _ in range(4)]
    cond = threading.Condition()
    active = {"now": 0, "max": 0, "arrived": 0}

    def route(req: Request) -> Reply:
        with cond:
            active["now"] += 1
            active["arrived"] += 1
            active["max"] = max(active["max"], active["now"])
            cond.notify_all()
            if active["arrived"] <= 2:
                # The first wave lingers, so a pool wider than two would show a third request
                # in flight meanwhile; with two workers, none can come.
                cond.wait_for(lambda: active["now"] > 2, timeout=0.3)
            active["now"] -= 1
        return Reply(200, rss((req.path[1:], f"Story {req.path[1:]}", "Text.")))

    for i, s in enumerate(servers):
        s.routes[f"/s{i}"] = route
    for s in servers:
        s.__enter__()
    try:
        settings = load_config(
            feeds_config(
                write_config, *(s.url(f"/s{i}") for i, s in enumerate(servers)), extra="\n[fetch]\nworkers = 2\n"
            )
        )
        report = ingest(settings, Store(settings.state_url), now=NOW, fetcher=None)
    finally:
        for s in servers:
            s.__exit__()
    assert all(o.error is None and o.new == 1 for o in report.sources)
    assert active["max"] == 2


def test_one_host_gets_one_request_at_a_time(write_config) -> None:
    with TestServer() as server:
        for i in range(4):
            server.routes[f"/f{i}"] = lambda req: Reply(200, rss((req.path[1:], f"Story {req.path[1:]}", "Text.")))
        settings = load_config(
            feeds_config(write_config, *(server.url(f"/f{i}") for i in range(4)), extra="\n[fetch]\nworkers = 4\n")
        )
        fake = FakeTime()
        report = ingest(settings, Store(settings.state_url), now=NOW, fetcher=fetcher(fake, host_delay=1.5))
    assert all(o.new == 1 for o in report.sources)
    assert server.max_active == 1
    assert fake.sleeps.count(1.5) == 3, "each request after the first waited for the host delay"


# --- a server that trickles: the wall-clock deadline holds per read -------------------------------

TRICKLED_FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Slow</title>' + b" " * 200 + b"</channel></rss>"
)


def test_a_feed_trickling_a_byte_a_second_is_given_up_at_the_deadline() -> None:
    import time

    with TestServer({"/feed.xml": lambda req: Reply(200, TRICKLED_FEED, trickle=1.0)}) as server:
        f = Fetcher(FetchPolicy(deadline=2, read_timeout=30, host_delay=0, retries=0))
        started = time.monotonic()
        with pytest.raises(FetchError, match="took longer than 2 s to send; gave up"):
            f.get(server.url("/feed.xml"), source="slow")
        assert time.monotonic() - started < 2 + 5


def test_digest_ingest_gives_up_on_a_trickling_feed_within_the_deadline(tmp_path: Path, write_config) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    import time

    with TestServer({"/feed.xml": lambda req: Reply(200, TRICKLED_FEED, trickle=1.0)}) as server:
        cfg = write_config(
            f"""
            [[sources]]
            name = "slow"
            kind = "feed"
            url = "{server.url("/feed.xml")}"

            [fetch]
            timeout = 30
            deadline = 3
            retries = 0
            host_delay = 0
            """
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(cfg), "ingest"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        took = time.monotonic() - started
    assert "took longer than 3 s to send; gave up" in proc.stderr, proc.stderr
    assert took < 3 + 5, f"digest ingest took {took:.1f} s"
