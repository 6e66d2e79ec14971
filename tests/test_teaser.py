from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import ROOT, shared_path, write_article

from digest.models import Article, Block
from digest.teaser import choose_teaser, detect_language, make_teaser, split_sentences
from digest.text import ELLIPSIS, is_body_opening

WHEN = datetime(2025, 8, 1, tzinfo=timezone.utc)
LEAD = (
    "The city council voted on Tuesday to turn the disused tram depot into a public library, ending a "
    "decade of argument over the site."
)
REST = [
    "Councillors backed the library plan by nine votes to four after a debate that ran past midnight.",
    "The depot, built in 1902, has stood empty since the last trams ran in 1998, and the library plan "
    "keeps its iron roof.",
    "Work on the library is due to start next spring and the council expects the depot to open to readers in 2027.",
]


def article(*paragraphs: str | Block, title: str = "Tram depot to become a library", **kw: object) -> Article:
    body = tuple(p if isinstance(p, Block) else Block(p) for p in paragraphs)
    return Article(id="a", source="s", title=title, published=WHEN, body=body, **kw)  # type: ignore[arg-type]


def teaser(*paragraphs: str | Block, max_chars: int = 220, **kw: object) -> str:
    return make_teaser(article(*paragraphs, **kw), max_chars).text


# --- what is not the lead is passed over -------------------------------------------------------


@pytest.mark.parametrize(
    "furniture",
    [
        pytest.param(["By Jane Smith"], id="byline"),
        pytest.param(["By Jane Smith and Tom Brown, Staff Writers"], id="byline with staff"),
        pytest.param(["Updated 3:45 p.m. ET, Aug. 1, 2025"], id="updated stamp"),
        pytest.param(["Published 1 August 2025"], id="published stamp"),
        pytest.param(["Tuesday, 1 August 2025, 09:14"], id="date line"),
        pytest.param(["Photo: Reuters/Jane Smith"], id="photo credit"),
        pytest.param(
            ["Councillors inspect the old depot's iron roof on Monday.", "Photograph: Jane Smith/Getty Images"],
            id="caption and credit",
        ),
        pytest.param(["The old depot on Monday. (Jane Smith/AFP/Getty Images)"], id="caption ending in credit"),
        pytest.param(["Share this article on Facebook"], id="share prompt"),
        pytest.param(["Sign up for our free morning newsletter"], id="subscribe prompt"),
        pytest.param(["ADVERTISEMENT"], id="advertisement"),
        pytest.param(["Story continues below advertisement"], id="advertisement notice"),
        pytest.param([Block("A depot with a past", "h")], id="subheading block"),
        pytest.param(["A depot with a past"], id="subheading line"),
        pytest.param(["Editor's note: This story was updated with the final vote."], id="editor's note"),
        pytest.param(["[This article first appeared in our weekend edition.]"], id="bracketed note"),
        pytest.param(["Library"], id="one-word line"),
        pytest.param(["— Jane Smith (@janesmith) August 1, 2025"], id="embedded post"),
        pytest.param(["Home > News > Local > Transport"], id="breadcrumbs"),
        pytest.param(["Copyright 2025 The Daily Example. All rights reserved."], id="copyright notice"),
        pytest.param(["| Home | Depot | Library | Contact |"], id="menu row"),
        pytest.param(
            [
                "(EDIT: an earlier version of this post gave the wrong year for the depot's closure, which was "
                "1998 and not 1989 as we said; thanks to the readers who wrote in to correct it.)"
            ],
            id="parenthetical edit note",
        ),
    ],
)
def test_furniture_before_the_lead_is_passed_over(furniture: list[str | Block]) -> None:
    choice = choose_teaser(article(*furniture, LEAD, *REST), 220)
    assert choice.text == LEAD
    assert choice.origin == "lead"
    assert len(choice.passed) >= len(furniture)


def test_a_pull_quote_repeating_a_later_line_is_passed_over() -> None:
    quote = "Books belong where the trams once slept."
    paragraph = f"The mayor was delighted. {quote} She said the vote was long overdue."
    choice = choose_teaser(article(quote, LEAD, paragraph, *REST), 220)
    assert choice.text == LEAD
    assert [p.reason for p in choice.passed] == ["pull quote"]


@pytest.mark.parametrize(
    "dateline",
    ["LONDON (Reuters) — ", "SEOUL, South Korea — ", "NEW YORK--", "Berlin (dpa) - ", "April 17, 2015 -- "],
)
def test_datelines_are_cut_from_the_lead(dateline: str) -> None:
    assert teaser(dateline + LEAD, *REST) == LEAD


def test_a_german_town_dateline_is_cut() -> None:
    assert teaser("Hamburg. " + GERMAN[0], *GERMAN[1:], title="Bibliothek im Depot").startswith("Die Stadt Hamburg")


def test_a_lead_that_only_repeats_the_headline_is_skipped() -> None:
    assert teaser("Tram depot to become a library", LEAD, *REST) == LEAD
    assert teaser("Tram depot to become a library.", LEAD, *REST) == LEAD
    assert teaser("Tram depot to become a library. " + LEAD, *REST) == LEAD


def test_hard_wrapped_lines_are_read_as_one_paragraph() -> None:
    lines = [
        "The city council voted on Tuesday to turn the disused",
        "tram depot into a public library, ending a decade",
        "of argument over the site.",
    ]
    assert teaser(*lines, *REST) == LEAD


# --- choosing and fitting ------------------------------------------------------------------------


def test_ends_at_a_sentence_boundary_within_budget() -> None:
    for budget in (60, 120, 150, 220, 400):
        t = teaser(LEAD, *REST, max_chars=budget)
        assert 0 < len(t) <= budget
        assert t.endswith((".", ELLIPSIS))


def test_the_lead_that_stands_for_the_article_is_chosen() -> None:
    # A scene-setting first sentence that says nothing of the story: the sentence that the rest of
    # the article (and the headline) is about is chosen over it.
    opening = "It was raining."
    t = teaser(f"{opening} {LEAD}", *REST)
    assert t.startswith("The city council voted")


def test_abbreviations_decimals_and_initials_do_not_end_a_sentence() -> None:
    text = (
        "Dr. J. R. Smith of Acme Inc. told U.S. officials on Jan. 5 that prices rose 3.5 per cent. "
        "The officials did not reply."
    )
    assert split_sentences(text, "en") == [
        "Dr. J. R. Smith of Acme Inc. told U.S. officials on Jan. 5 that prices rose 3.5 per cent.",
        "The officials did not reply.",
    ]
    t = teaser(text, *REST, title="Prices up", max_chars=100)
    assert t == "Dr. J. R. Smith of Acme Inc. told U.S. officials on Jan. 5 that prices rose 3.5 per cent."


def test_a_first_sentence_longer_than_the_budget_is_cut_between_words() -> None:
    long = (
        "The council, which had argued about the future of the disused tram depot for more than a decade "
        "and had twice rejected plans for flats on the site, voted on Tuesday night to turn it into a library."
    )
    for budget in (40, 57, 80, 101, 150):
        t = teaser(long, max_chars=budget)
        assert len(t) <= budget and t.endswith(ELLIPSIS)
        head = t[: -len(ELLIPSIS)]
        assert long.startswith(head)
        assert long[len(head)] in " ,", f"cut mid-word: {t!r}"
        assert not head.endswith((",", " "))


# --- languages -----------------------------------------------------------------------------------


GERMAN = [
    "Die Stadt Hamburg will das alte Straßenbahndepot z. B. für eine Bibliothek nutzen. Das Gebäude "
    "stammt aus dem 19. Jahrhundert und steht seit 1998 leer.",
    "Der Stadtrat stimmte am 3. Oktober mit neun zu vier Stimmen für den Plan, die Bibliothek soll 2027 öffnen.",
]
CZECH = [
    "Vláda schválila v pondělí 12. května návrh na novou knihovnu v bývalé tramvajové vozovně. Ministr "
    "dr. Novák řekl, že stavba začne např. už na jaře.",
    "Knihovna by se podle ministerstva měla otevřít čtenářům v roce 2027, řekl Novák novinářům.",
]


def test_german_sentences_keep_abbreviations_and_ordinals() -> None:
    assert detect_language(" ".join(GERMAN)) == "de"
    t = teaser(*GERMAN, title="Bibliothek im Depot", max_chars=100)
    assert t == "Die Stadt Hamburg will das alte Straßenbahndepot z. B. für eine Bibliothek nutzen."


def test_czech_sentences_keep_abbreviations_and_ordinal_dates() -> None:
    assert detect_language(" ".join(CZECH)) == "cs"
    t = teaser(*CZECH, title="Knihovna ve vozovně", max_chars=110)
    assert t == "Vláda schválila v pondělí 12. května návrh na novou knihovnu v bývalé tramvajové vozovně."


JAPANESE = [
    "市議会は火曜日、使われなくなった路面電車の車庫を公共図書館に改装する計画を賛成多数で可決した。"
    "十年に及ぶ議論に決着がついた。",
    "図書館は二〇二七年に開館する予定で、車庫の鉄の屋根はそのまま残される。",
]


def test_japanese_is_split_at_its_full_stops_and_budgeted_by_characters() -> None:
    assert detect_language(JAPANESE[0]) == "ja"
    first = "市議会は火曜日、使われなくなった路面電車の車庫を公共図書館に改装する計画を賛成多数で可決した。"
    assert teaser(*JAPANESE, title="車庫が図書館に", max_chars=60) == first
    both = first + "十年に及ぶ議論に決着がついた。"
    assert teaser(*JAPANESE, title="車庫が図書館に", max_chars=len(both)) in {first, both}
    cut = teaser(*JAPANESE, title="車庫が図書館に", max_chars=30)
    assert len(cut) <= 30 and cut.endswith(ELLIPSIS) and first.startswith(cut[:-1].rstrip("、"))


# --- the editor's choice -------------------------------------------------------------------------


def test_front_matter_summary_wins(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from digest.sources.folder import read_article_file

    path = write_article(
        tmp_path,
        "a.md",
        title="Tram depot",
        date="2025-08-01",
        body=f"{LEAD}\n\n{REST[0]}",
        extra='summary: "A library where the trams slept. Doors open in 2027."\n',
    )
    a = read_article_file(path, source="s", tz=ZoneInfo("UTC"))
    choice = choose_teaser(a, 220)
    assert (choice.origin, choice.text) == (
        "front matter summary",
        "A library where the trams slept. Doors open in 2027.",
    )
    assert choose_teaser(a, 40).text == "A library where the trams slept."


def test_the_editors_flag_decides_not_the_file_name() -> None:
    echo = LEAD[:80] + " […]"
    flagged = choose_teaser(article(LEAD, *REST, summary=echo, summary_by_editor=True), 220)
    assert (flagged.origin, flagged.text) == ("front matter summary", echo)
    # A Markdown file name alone does not make a description the editor's.
    named = choose_teaser(article(LEAD, *REST, summary=echo, origin="content/a.md"), 220)
    assert named.origin == "lead"


def test_a_dek_is_the_editors_teaser() -> None:
    choice = choose_teaser(article(LEAD, *REST, dek="Ten years of argument end in a vote for books."), 220)
    assert (choice.origin, choice.text) == ("dek", "Ten years of argument end in a vote for books.")


def test_feed_description_only_when_it_is_not_the_bodys_opening() -> None:
    own = "Ten years of argument end in a vote for books."
    assert choose_teaser(article(LEAD, *REST, summary=own), 220).origin == "description"
    for echo in (
        LEAD,
        LEAD[:80] + " […]",
        LEAD[:61] + "…",
        LEAD[:90] + "... Read more",
        "LONDON (Reuters) — " + LEAD[:70],
    ):
        a = article("LONDON (Reuters) — " + LEAD, *REST, summary=echo)
        assert is_body_opening(echo, a.paragraphs), echo
        assert choose_teaser(a, 220).origin == "lead", echo
    assert not is_body_opening(own, article(LEAD, *REST).paragraphs)
    blurb = "The latest news and headlines from the Daily Example, with videos and photos."
    assert choose_teaser(article(LEAD, *REST, summary=blurb), 220).origin == "lead"


# --- both forms are clean ------------------------------------------------------------------------


def test_text_and_html_forms_carry_no_tags_or_entities() -> None:
    body = "Fish &amp; chips <b>and</b> a 5 < 6 sign: the café’s “tram” menu costs £3 & up."
    t = make_teaser(article(body, *REST), 220)
    assert t.text == "Fish & chips and a 5 < 6 sign: the café’s “tram” menu costs £3 & up."
    assert t.html == "Fish &amp; chips and a 5 &lt; 6 sign: the café’s “tram” menu costs £3 &amp; up."
    assert not re.search(r"<[a-z/]|&\w+;", t.text)


# --- the command -----------------------------------------------------------------------------------


def digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_teaser_command_prints_one_line_per_file_in_order(tmp_path: Path) -> None:
    b = tmp_path / "b.md"
    b.write_text(f'---\ntitle: "Undated"\n---\n\nBy Jane Smith\n\n{LEAD}\n\n{REST[0]}\n')
    a = write_article(
        tmp_path, "a.md", title="Dated", date="2025-08-01", body=REST[1], extra='teaser: "An editor wrote this."\n'
    )
    c = tmp_path / "c.txt"
    c.write_text(
        "A headline\nA dek that sets it up.\nJuly 25, 2025\n" + "A first paragraph " + "word " * 40 + "ends here.\n"
    )
    proc = digest("teaser", "--max-chars", "200", str(b), str(a), str(c), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [LEAD, "An editor wrote this.", "A dek that sets it up."]

    proc = digest("teaser", "--json", str(b), str(tmp_path / "missing.md"), cwd=tmp_path)
    assert proc.returncode == 0
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first["teaser"] == LEAD and first["origin"] == "lead" and first["max_chars"] == 220
    assert {"reason": "byline", "text": "By Jane Smith"} in first["passed_over"]
    assert second["file"].endswith("missing.md") and "error" in second
    assert "missing.md" in proc.stderr and "Traceback" not in proc.stderr


def test_teaser_command_fails_clearly_when_nothing_can_be_read(tmp_path: Path) -> None:
    proc = digest("teaser", "nope.md", cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope.md" in proc.stderr and "Traceback" not in proc.stderr


def test_folder_source_still_rejects_undated_files(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from digest.sources.folder import read_article_file

    p = tmp_path / "undated.md"
    p.write_text(f'---\ntitle: "Undated"\n---\n\n{LEAD}\n')
    with pytest.raises(ValueError, match="no date"):
        read_article_file(p, source="s", tz=ZoneInfo("UTC"))
    a = read_article_file(p, source="s", tz=ZoneInfo("UTC"), require_date=False)
    assert a.date_is_first_seen and a.published.tzinfo is not None


# --- the corpus ------------------------------------------------------------------------------------


def test_beats_every_peer_on_the_teaser_corpus() -> None:
    set_dir = shared_path("corpus", "teasers")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import teasers as bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    peers = [m for m in bench.METHODS if not m.ceiling]
    table = bench.summarise(bench.score(bench.load_pairs(set_dir), 200, peers), lambda i: True)
    ours = table[peers[0].name]
    assert ours["n"] == 318
    assert ours["RL"] >= 18.3
    assert all(ours["RL"] > t["RL"] for name, t in table.items() if name != peers[0].name)
    assert ours["over"] == ours["mid-word"] == ours["leaks"] == ours["empty"] == 0
