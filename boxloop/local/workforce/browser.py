"""People label in their browser: the local labeling job served by the labeling app.

`BrowserWorkforce` is the ``Workforce`` of ``boxloop local run --workforce browser``. The first
batch starts one `LabelingServer` for the whole run (one URL, printed once with a random
token); each batch opens a job in the `JournalStore` (``OUT/labeling/journal.jsonl``), and
``label`` waits until every image has its answers, reporting images done and seconds per image
to the step-progress hook as answers arrive. Then it yields one `TaskResult` per image, built
from the journal (consolidated when several workers answered), and closes the job.

Results are yielded when the batch is complete, not as each image is: the labeling runner
writes the output manifest only at the end of a batch anyway, and until then a worker may
still correct an answer with "previous". Answers are found by record id, so an image answered
in an earlier (interrupted) run is not asked for again.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import BoxloopError
from boxloop.core.records import PROVENANCE_KEY
from boxloop.labeling.api import DEFAULT_LEASE_S, LabelingApi
from boxloop.labeling.auth import ImageSigner, TokenAuth
from boxloop.labeling.contract import API_BASE, JobInfo, TaskInfo
from boxloop.labeling.effort import EffortSummary
from boxloop.labeling.output import ground_truth_now, label_of
from boxloop.labeling.preannotations import PREANNOTATIONS_KEY, preboxes_from_field, task_role
from boxloop.labeling.store import JOURNAL_FILE, JournalStore
from boxloop.local.labeling_server import LabelingServer
from boxloop.local.progress import step_progress
from boxloop.local.workforce.base import LabelTask, TaskResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from boxloop.core.consolidation import ConsolidationConfig

LOG = logging.getLogger(__name__)
WORKERS_KEY = "boxloop-workers"
"""Output-line field: who labeled the image (the names they gave, else their worker ids)."""
UNKNOWN_SIZE = "the image's size could not be read from its header, so it cannot be labeled"


def _announce(text: str) -> None:
    """Without a console of the caller's, the URL goes to the log (stderr unless configured)."""
    LOG.warning("%s", text)


class BrowserWorkforce:
    """People labeling in the browser app, served from this process.

    Args:
        labeling_dir: Where the journal goes (``OUT/labeling``); kept across runs.
        host: Address to bind (``127.0.0.1``; ``0.0.0.0`` to let other machines in).
        port: Port; 0 picks a free one.
        lease_s: How long an image stays with a worker who opened it.
        token: The run's secret; a fresh random one when ``None``.
        title: Task title shown on the page.
        instructions: Shown in the page's help.
        consolidation: How several workers' boxes merge.
        announce: Shows the URL (once) and notices; the module's logger by default.
        poll_s: How often the waiting batch wakes without news (to refresh the pace).
    """

    name = "browser"

    def __init__(
        self,
        labeling_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lease_s: float = DEFAULT_LEASE_S,
        token: str | None = None,
        title: str = "Draw a box around every object",
        instructions: str = "",
        consolidation: ConsolidationConfig | None = None,
        announce: Callable[[str], None] = _announce,
        poll_s: float = 1.0,
    ) -> None:
        """See the class docstring."""
        self.labeling_dir = labeling_dir
        self.host = host
        self.port = port
        self.lease_s = lease_s
        self.token = token or secrets.token_urlsafe(24)
        self.title = title
        self.instructions = instructions
        self.consolidation = consolidation
        self.announce = announce
        self.poll_s = poll_s
        self.store: JournalStore | None = None
        self.server: LabelingServer | None = None
        self._summaries: dict[str, dict[str, Any]] = {}
        self._stopped = False
        self._announced = False

    @property
    def url(self) -> str | None:
        """The page's address with the token, once the server runs."""
        return self.server.url(self.token) if self.server else None

    def start(self) -> str:
        """Open the journal and start the server (once); returns the URL.

        The URL is announced when the first batch opens, so the page finds work at once.
        """
        if self.server is None:
            self._stopped = False
            self.store = JournalStore(self.labeling_dir / JOURNAL_FILE)
            signer = ImageSigner(secrets.token_bytes(32))
            api = LabelingApi(
                self.store,
                TokenAuth(self.token),
                image_url=lambda task: signer.url(API_BASE, task.task_id),
                signer=signer,
                lease_s=self.lease_s,
            )
            self.server = LabelingServer(api, host=self.host, port=self.port).start()
            if self.store.skipped_lines:
                self.announce(
                    f"{self.store.path}: {self.store.skipped_lines} unreadable journal "
                    "line(s) skipped (a write cut short by a crash; that answer was never "
                    "acknowledged)"
                )
        return self.url or ""

    def close(self) -> None:
        """Stop the server and close the journal (every answer is on disk already).

        A batch still waiting for answers ends with a `BoxloopError` (its job fails; nothing
        is lost: the answers are in the journal, and a resumed run takes them from there).
        """
        self._stopped = True
        if self.store is not None:
            with self.store.changed:
                self.store.changed.notify_all()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> BrowserWorkforce:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def job_summary(self, job_name: str) -> dict[str, Any]:
        """The ``effort`` block of a finished job (the runner adds it to the stats file)."""
        return self._summaries.get(job_name, {})

    @staticmethod
    def _task_info(task: LabelTask) -> TaskInfo:
        assert task.image_wh is not None
        provenance = task.fields.get(PROVENANCE_KEY) or {}
        role = task_role(provenance if isinstance(provenance, dict) else {})
        pre = preboxes_from_field(task.fields.get(PREANNOTATIONS_KEY)) if role == "pool" else ()
        return TaskInfo(
            task_id=task.record_id,
            source_ref=task.source_ref,
            image=str(task.image_path),
            width=int(task.image_wh[0]),
            height=int(task.image_wh[1]),
            role=role,
            preannotations=pre,
        )

    def label(self, tasks: Sequence[LabelTask]) -> Iterator[TaskResult]:
        """Serve ``tasks`` until each has its answers; then one result per task."""
        self.start()
        store = self.store
        assert store is not None
        unreadable = [t for t in tasks if t.image_wh is None]
        for task in unreadable:
            yield TaskResult.failed(task.record_id, UNKNOWN_SIZE)
        open_tasks = [t for t in tasks if t.image_wh is not None]
        if not open_tasks:
            return
        job = open_tasks[0].job
        info = JobInfo(
            name=job.name,
            classes=dict(job.class_map),
            workers_per_object=job.workers_per_object,
            title=self.title,
            instructions=self.instructions,
        )
        store.open_job(info, [self._task_info(t) for t in open_tasks])
        if not self._announced:  # once the first batch is there to see
            self.announce(f"Label the images in your browser: {self.url}")
            self._announced = True
        try:
            self._wait(store, open_tasks, job.workers_per_object)
            yield from self._results(store, open_tasks, job.name)
        finally:
            store.close_job(job.name)

    def _wait(self, store: JournalStore, tasks: Sequence[LabelTask], needed: int) -> None:
        """Block until every task has ``needed`` answers, reporting progress as they come."""
        total = len(tasks)
        last: tuple[int, int] | None = None
        with store.changed:
            while True:
                answers = [store.answers(t.record_id)[:needed] for t in tasks]
                done = sum(1 for a in answers if len(a) >= needed)
                worked = [a for group in answers for a in group]
                seconds = sum(float(a.effort.get("seconds", 0.0)) for a in worked)
                if (done, len(worked)) != last:
                    detail = f"{total - done} left"
                    if worked:
                        detail += f", {seconds / len(worked):.1f} s per image"
                    step_progress(
                        step="Label", done=done, total=total, unit="images", detail=detail
                    )
                    last = (done, len(worked))
                if done == total:
                    return
                if self._stopped:
                    raise BoxloopError(
                        f"the labeling server stopped with {total - done} of {total} images "
                        f"unanswered; the answers so far are kept in {store.path}"
                    )
                store.changed.wait(self.poll_s)

    def _results(
        self, store: JournalStore, tasks: Sequence[LabelTask], job_name: str
    ) -> Iterator[TaskResult]:
        summary = EffortSummary()
        now = ground_truth_now()
        for task in tasks:
            answers = store.answers(task.record_id)[: task.job.workers_per_object]
            for answer in answers:
                summary.add(answer)
            yield TaskResult(
                record_id=task.record_id,
                label=label_of(
                    answers,
                    job_name=job_name,
                    class_map=task.job.class_map,
                    creation_date=now,
                    consolidation=self.consolidation,
                ),
                n_workers=len(answers),
                worker_seconds=sum(float(a.effort.get("seconds", 0.0)) for a in answers),
                output_fields={WORKERS_KEY: [a.worker_name or a.worker_id for a in answers]},
            )
        self._summaries[job_name] = {"effort": summary.to_json()}
