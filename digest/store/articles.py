"""Articles and the keys they are recognised by. What to write is decided elsewhere
(digest.sources.identity.plan_upsert); this repository looks up what it needs and applies the plan."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from digest.models import Article, ArticleWrite, Block, KnownArticles, StoredArticle, UpsertPlan, UpsertReport
from digest.store.repository import Repository, chunks
from digest.store.schema import article_keys, articles


def _row_values(write: ArticleWrite) -> dict[str, Any]:
    a = write.article
    # Shallow: asdict() would deep-copy every body block only to have them re-encoded below.
    values = {name: getattr(a, name) for name in a.__dataclass_fields__}
    values["body"] = json.dumps([[b.kind, b.text] for b in a.body], ensure_ascii=False)
    values["tags"] = json.dumps(list(a.tags), ensure_ascii=False)
    values["first_seen"] = write.first_seen
    values["content_hash"] = write.content_hash
    return values


def _article(row: Any) -> Article:
    m = row._mapping
    return Article(
        id=m["id"],
        source=m["source"],
        title=m["title"],
        url=m["url"],
        published=m["published"],
        updated=m["updated"],
        author=m["author"],
        dek=m["dek"],
        summary=m["summary"],
        image=m["image"],
        image_alt=m["image_alt"],
        image_width=m["image_width"],
        tags=tuple(json.loads(m["tags"] or "[]")),
        section=m["section"],
        language=m["language"],
        body=tuple(Block(kind=k, text=t) for k, t in json.loads(m["body"] or "[]")),
        origin=m["origin"],
        date_is_first_seen=bool(m["date_is_first_seen"]),
        summary_by_editor=bool(m["summary_by_editor"]),
    )


class ArticlesRepository(Repository):
    def known(self, keys: Iterable[str], ids: Iterable[str]) -> KnownArticles:
        """Which stored articles own any of ``keys``, and those articles with the ones of ``ids``,
        read in a few queries."""
        cols = (
            articles.c.id,
            articles.c.source,
            articles.c.content_hash,
            articles.c.first_seen,
            articles.c.published,
            articles.c.body,
        )
        owners: dict[str, str] = {}
        by_id: dict[str, StoredArticle] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(keys))):
                q = sa.select(article_keys.c.key, article_keys.c.article_id).where(article_keys.c.key.in_(chunk))
                owners.update((r.key, r.article_id) for r in conn.execute(q))
            for chunk in chunks(sorted(set(owners.values()) | set(ids))):
                for r in conn.execute(sa.select(*cols).where(articles.c.id.in_(chunk))):
                    by_id[r.id] = StoredArticle(
                        id=r.id,
                        source=r.source,
                        content_hash=r.content_hash,
                        first_seen=r.first_seen,
                        published=r.published,
                        body_chars=sum(len(t) for _k, t in json.loads(r.body or "[]")),
                    )
        return KnownArticles(owners=owners, by_id=by_id)

    def apply(self, plan: UpsertPlan) -> UpsertReport:
        """Write a plan in one transaction; returns its report."""
        with self.engine.begin() as conn:
            for write in plan.updates:
                conn.execute(articles.update().where(articles.c.id == write.article.id).values(**_row_values(write)))
            if plan.inserts:
                conn.execute(articles.insert(), [_row_values(w) for w in plan.inserts])
            if plan.keys:
                conn.execute(
                    article_keys.insert(),
                    [{"key": k.key, "article_id": k.article_id, "source": k.source} for k in plan.keys],
                )
        return plan.report

    def known_keys(self, source: str) -> frozenset[str]:
        """The recognition keys recorded for a source: whatever it has already delivered."""
        with self.engine.connect() as conn:
            return frozenset(
                conn.execute(sa.select(article_keys.c.key).where(article_keys.c.source == source)).scalars()
            )

    def published_between(self, start: datetime, end: datetime) -> list[Article]:
        """Articles published after ``start`` up to ``end``, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(articles)
                .where(articles.c.published > start, articles.c.published <= end)
                .order_by(articles.c.published.desc(), articles.c.id)
            ).all()
        return [_article(r) for r in rows]

    def all(self) -> list[Article]:
        """Every stored article, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(articles).order_by(articles.c.published.desc())).all()
        return [_article(r) for r in rows]
