"""Lead-paragraph teasers, written the way a sub-editor would.

The editor's own words win (:mod:`.editor`): a ``summary`` or ``teaser`` an editor wrote, else a
dek (standfirst), else the feed's or page's description when it says something of its own rather
than repeating the body's opening words.

Otherwise the teaser comes from the lead. The body is read the way a sub-editor reads a page, and
what is not the story is passed over (:mod:`.boilerplate`). From the first sentences of what
remains, in the article's language (:mod:`.language`), the run of sentences that fits the budget
and best stands for the whole article is chosen (:mod:`.lead`), and fitted to the budget
(:mod:`.cutting`). :mod:`.choice` puts these together.
"""

from digest.teaser.boilerplate import Passed, furniture, lead_paragraphs, repeats_headline, strip_dateline
from digest.teaser.choice import DEFAULT_MAX_CHARS, TeaserChoice, as_teaser, choose_teaser, make_teaser
from digest.teaser.cutting import fit_sentences
from digest.teaser.editor import editors_choice
from digest.teaser.language import article_language, detect_language, split_sentences
from digest.teaser.lead import Candidate, Weights, choose_lead, lead_candidates

__all__ = [
    "DEFAULT_MAX_CHARS",
    "Candidate",
    "Passed",
    "TeaserChoice",
    "Weights",
    "article_language",
    "as_teaser",
    "choose_lead",
    "choose_teaser",
    "detect_language",
    "editors_choice",
    "fit_sentences",
    "furniture",
    "lead_candidates",
    "lead_paragraphs",
    "make_teaser",
    "repeats_headline",
    "split_sentences",
    "strip_dateline",
]
