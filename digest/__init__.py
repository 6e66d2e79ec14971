"""digest: a newsletter digest generator.

Ingest articles from feeds, pages and folders; select an issue; write teasers; render a
responsive e-mail with a plain-text twin; deliver it to each subscriber exactly once.
"""

__version__ = "0.1.0"
