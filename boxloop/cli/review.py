"""``boxloop review OUT``: open a local run's labels in the labeling app, correct any."""

from __future__ import annotations

import argparse
import secrets
import threading
from pathlib import Path

from boxloop.cli.common import EXIT_OK, stop_signals_interrupt


def _cmd_review(args: argparse.Namespace) -> int:
    from boxloop.aws.s3 import read_text
    from boxloop.core.labels import LabelConfig
    from boxloop.labeling import API_BASE, ImageSigner, JournalStore, LabelingApi, TokenAuth
    from boxloop.local.labeling_server import LabelingServer
    from boxloop.local.review import REVIEW_JOURNAL, LocalReview

    out = Path(args.out)
    classes = None
    if args.labels:
        classes = dict(LabelConfig.from_json(read_text(args.labels), source=args.labels).class_map)
    store = JournalStore(out / "labeling" / REVIEW_JOURNAL)
    try:
        review = LocalReview(
            out, store, classes=classes, base_dir=Path(args.base_dir) if args.base_dir else None
        )
        token = secrets.token_urlsafe(24)
        signer = ImageSigner(secrets.token_bytes(32))
        api = LabelingApi(
            store,
            TokenAuth(token),
            image_url=lambda task: signer.url(API_BASE, task.task_id),
            signer=signer,
            review=review,
        )
        server = LabelingServer(api, host=args.host, port=args.port).start()
        print(f"Review {len(review.items())} images in your browser: {server.url(token)}")
        print("Corrections go into the output manifest as you save them; Ctrl-C ends the review.")
        try:
            with stop_signals_interrupt():
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        page = review.refresh_report_page()
        if page is not None:
            print(f"{page} now shows the corrected labels")
    finally:
        store.close()
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``review`` to the command's sub-parsers."""
    review = sub.add_parser(
        "review", help="open a local run's labels in the labeling app to check and correct them"
    )
    review.add_argument("out", help="the output folder of a local run")
    review.add_argument("--labels", help="class names (default: the run's coco.json categories)")
    review.add_argument(
        "--base-dir", help="where relative source-refs of the output manifest are resolved"
    )
    review.add_argument("--host", default="127.0.0.1", help="address to serve on")
    review.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    review.set_defaults(func=_cmd_review)
