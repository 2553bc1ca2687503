"""``hearth dataset``: write a fine-tuning dataset (JSON Lines) from the saved conversations.

    hearth dataset [--data-dir DIR] --kind sft|preferences --out FILE.jsonl
                   [--format openai|sharegpt] [--rating any|not_bad|good] [--model NAME …]
                   [--since DATE] [--until DATE] [--pinned-only] [--collection NAME] [--include-incomplete]
                   [--dry-run]

The rows and their formats are described in :mod:`app.core.datasets` and the README. No Qt is
imported: it runs on a server without a display, and while the window is open (it only reads
the database; SQLite's WAL lets it read while Hearth writes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import cast

from app import paths
from app.core.datasets import (
    FORMATS,
    KINDS,
    RATINGS,
    DatasetError,
    DatasetSpec,
    Format,
    Kind,
    Rating,
    build,
    describe_count,
    write_jsonl,
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hearth dataset",
        description="Write a fine-tuning dataset (one JSON object a line) from your saved conversations.",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="the Hearth folder to read (default: yours)")
    parser.add_argument("--kind", required=True, choices=list(KINDS), help="sft: conversations; preferences: pairs")
    parser.add_argument("--out", metavar="FILE", help="the .jsonl file to write (required unless --dry-run)")
    parser.add_argument("--format", dest="fmt", default="openai", choices=list(FORMATS), help="default: openai")
    parser.add_argument(
        "--rating",
        default="any",
        choices=list(RATINGS),
        help="SFT: any reply, leave out replies rated Bad (not_bad), or only those rated Good (good); default: any",
    )
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME", help="only replies by this model (repeatable)"
    )
    parser.add_argument("--since", metavar="DATE", help="only replies from this day on (YYYY-MM-DD)")
    parser.add_argument("--until", metavar="DATE", help="only replies up to the end of this day (YYYY-MM-DD)")
    parser.add_argument("--pinned-only", action="store_true", help="only pinned conversations")
    parser.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME",
        help="only conversations that use this document collection (repeatable)",
    )
    parser.add_argument(
        "--include-incomplete", action="store_true", help="also replies that were stopped, failed or interrupted"
    )
    parser.add_argument("--dry-run", action="store_true", help="count the rows, write nothing")
    return parser.parse_args(list(argv))


def _documents(spec: DatasetSpec) -> object | None:
    """The document index, when the filter needs it and there is one (it names collections)."""
    if not spec.collections:
        return None
    from app.core.documents.index import DB_NAME, DocumentIndex, DocumentIndexError

    if not (paths.data_dir() / DB_NAME).exists():
        return None  # build() says there are no collections
    try:
        return DocumentIndex()
    except DocumentIndexError as exc:
        raise DatasetError(str(exc)) from exc


def main(argv: Sequence[str]) -> int:
    from app.core.datasets import parse_date
    from app.core.store import ConversationStore, StoreError

    args = parse_args(argv)
    if not args.out and not args.dry_run:
        print(
            "hearth dataset: say where to write it with --out FILE.jsonl (or count only with --dry-run)",
            file=sys.stderr,
        )
        return 2
    try:
        spec = DatasetSpec(
            kind=cast(Kind, args.kind),
            fmt=cast(Format, args.fmt),
            rating=cast(Rating, args.rating),
            models=tuple(args.model),
            since=parse_date(args.since) if args.since else None,
            until=parse_date(args.until, end=True) if args.until else None,
            pinned_only=args.pinned_only,
            include_incomplete=args.include_incomplete,
            collections=tuple(args.collection),
        )
        spec.check()
    except DatasetError as exc:
        print(f"hearth dataset: {exc}", file=sys.stderr)
        return 2
    if args.data_dir:
        paths.set_root(args.data_dir)
    db = paths.data_dir() / "conversations.sqlite3"
    if not db.exists():
        result_rows: list[dict[str, object]] = []
        conversations = used = 0
    else:
        try:
            store = ConversationStore(db)
        except StoreError as exc:
            print(f"hearth dataset: {exc}", file=sys.stderr)
            return 1
        try:
            result = build(store, spec, documents=_documents(spec))
        except (StoreError, DatasetError) as exc:
            print(f"hearth dataset: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()
        result_rows, conversations, used = result.rows, result.conversations, result.used
    summary = f"{describe_count(spec.kind, len(result_rows))} from {used:,} of {conversations:,} saved conversations"
    if args.dry_run:
        print(f"{summary} (dry run: nothing written).")
        return 0
    try:
        write_jsonl(args.out, result_rows)
    except DatasetError as exc:
        print(f"hearth dataset: {exc}", file=sys.stderr)
        return 1
    print(f"Wrote {summary} to {args.out}.")
    return 0
