"""The text rules shared by the teaser and the renderer: cutting at a word, owed closing marks."""

from __future__ import annotations

import pytest

from digest.render.environment import one_line
from digest.text import ELLIPSIS, cut_at_word, is_body_opening, unclosed


@pytest.mark.parametrize(
    "text, owed",
    [
        ("He said “we will build the library (and the café) before", "”"),
        ("The plan (which the mayor called “overdue", "”)"),
        ('She said "the roof stays', '"'),
        ("Sie sagte: „Das Dach bleibt", "“"),
        ("Il a dit « le toit reste", "»"),
        ("I don’t think it’s ‘overdue’ at all", ""),
    ],
)
def test_unclosed_quotes_and_parentheses_are_found(text: str, owed: str) -> None:
    assert unclosed(text) == owed


def test_a_cut_never_leaves_a_quote_or_parenthesis_open() -> None:
    text = "The mayor said “this library will be the finest in the region, and we will open it (with the help of volunteers) in the spring of 2027” on Tuesday."
    for budget in range(30, len(text)):
        t = cut_at_word(text, budget)
        assert len(t) <= budget
        assert unclosed(t) == "", t
        assert t.count("“") == t.count("”") and t.count("(") == t.count(")")


def test_nothing_is_cut_mid_word_even_without_spaces() -> None:
    assert cut_at_word("Supercalifragilisticexpialidocious is a word.", 20) == ""


def test_a_cut_ends_at_a_clause_pause_near_the_end_rather_than_mid_clause() -> None:
    text = "The depot stood empty for twenty-six years, and the council argued over it all that time."
    assert cut_at_word(text, 50) == "The depot stood empty for twenty-six years…"
    # A pause far from the budget's end would waste it: the cut is made between words instead.
    assert cut_at_word(text, 70) == "The depot stood empty for twenty-six years, and the council argued…"


def test_chinese_is_cut_between_any_two_characters() -> None:
    text = "市议会周二投票决定将废弃的电车车库改建为公共图书馆结束了十年的争论"
    assert cut_at_word(text, 10) == text[:9] + ELLIPSIS


def test_a_long_word_is_broken_only_when_asked() -> None:
    url = "https://news.example.org/2025/08/01/the-council-votes-to-turn-the-tram-depot-into-a-library"
    assert cut_at_word(url, 40) == ""
    assert cut_at_word(url, 40, break_long_words=True) == url[:39] + ELLIPSIS
    # Whole words keep more than half the room: the long word goes rather than being broken.
    assert cut_at_word("The council votes today on " + url, 40, break_long_words=True) == "The council votes today on…"
    # They would keep less than half of it: the long word is broken instead.
    assert cut_at_word("Read " + url, 40, break_long_words=True) == ("Read " + url)[:39] + ELLIPSIS


@pytest.mark.parametrize("limit", [20, 33, 47, 60])
def test_one_line_cuts_by_the_same_rule_as_the_teaser(limit: int) -> None:
    title = "Mayor says “the library will open in 2027, whatever the weather” at a packed meeting"
    assert one_line(title, limit) == cut_at_word(title, limit, break_long_words=True)
    assert len(one_line(title, limit)) <= limit
    assert unclosed(one_line(title, limit)) == ""


BODY = ["LONDON (Reuters) — The quick brown fox jumps over the lazy dog.", "The dog did not mind at all."]


@pytest.mark.parametrize(
    "summary",
    [
        "The quick brown fox …",
        "The quick brown fo...",
        "The quick brown fox jumps. Read more",
        "The quick brown fox jumps over (more)",
        "London (Reuters) - The quick brown fox jumps […]",
        "The quick brown fox jumps over the lazy dog. The dog did not mind",
    ],
)
def test_an_excerpt_of_the_bodys_opening_is_recognised(summary: str) -> None:
    assert is_body_opening(summary, BODY)


@pytest.mark.parametrize(
    "summary",
    [
        "A fox, reviewed.",
        "The quick brown fox jumps over the lazy dog and the cat too, and then the dog did not mind at all.",
        "The quick red fox jumps over the lazy cat, in a story about the farm's animals.",
    ],
)
def test_a_summary_of_its_own_is_not_the_bodys_opening(summary: str) -> None:
    assert not is_body_opening(summary, BODY)


def test_an_excerpt_may_spell_the_apostrophe_differently() -> None:
    assert is_body_opening("Here's our year in review …", ["Here’s our year in review, with thanks to everyone."])


def test_a_summary_that_repeats_a_later_paragraph_is_not_the_opening() -> None:
    # A list of materials before the text: the description quotes the text, not the body's opening.
    body = ["Cloche", "Ruler", "Spoon", "Moss", "Glass terrariums are easy to care for and keep their moisture."]
    assert not is_body_opening("Glass terrariums are easy to care for and keep their moisture.", body)
    assert is_body_opening("Glass terrariums are easy to care for and keep their moisture.", body[1:])
