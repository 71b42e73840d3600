"""``boxloop aws start | status | report | export | stop | resume``: a deployed run, by terminal.

Thin adapters over ``boxloop.aws.operate``: every command finds the stack's bucket and state
machine from its outputs (``--stack``, default ``Boxloop``), with the standard AWS credential
chain and region.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from boxloop.aws.operate.export import FORMATS
from boxloop.aws.stack_outputs import DEFAULT_STACK_NAME, NO_CREDENTIALS, AwsSetupError
from boxloop.cli.common import EXIT_OK, add_set_option, parse_set

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.aws.operate.deployment import Deployment
    from boxloop.aws.operate.executions import Execution
    from boxloop.aws.operate.start import CheckedRun

MAX_ERRORS_SHOWN = 10
WATCH_SECONDS = 15.0


def _aws_errors(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """``command`` with AWS's refusals (access denied, no such key...) as one-line errors.

    The message is botocore's own (it names the operation, the error code and AWS's reason);
    credentials that go missing or expire mid-command get the same advice as at the start.
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from botocore.exceptions import ClientError, NoCredentialsError

        try:
            return command(args)
        except NoCredentialsError:
            raise AwsSetupError(NO_CREDENTIALS) from None
        except ClientError as exc:
            raise AwsSetupError(str(exc)) from None

    return run


def _deployment(args: argparse.Namespace) -> Deployment:
    from boxloop.aws.operate.deployment import load_deployment

    return load_deployment(args.stack)


def _print_checked(checked: CheckedRun) -> None:
    report = checked.report
    if report is None:
        return
    print(report.summary())
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        print(f"  {error}")
    if report.bad > MAX_ERRORS_SHOWN:
        print(f"  ... and {report.bad - MAX_ERRORS_SHOWN} more bad lines")
    if report.bad:
        print("  (bad lines are set aside in the run's output/rejected.jsonl; the others run)")


def _upload(deployment: Deployment, folder: Path) -> str:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from boxloop.aws.operate.upload import plan_upload, upload_images

    plan = plan_upload(folder, bucket=deployment.bucket)
    with Progress(
        TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as progress:
        task = progress.add_task("upload", total=len(plan.files))
        summary = upload_images(plan, on_file=lambda _path, _skipped: progress.advance(task))
    print(
        f"{len(plan.files)} images under s3://{plan.bucket}/{plan.prefix}images/: "
        f"{summary.uploaded} uploaded ({summary.bytes_sent / 1e6:.1f} MB), "
        f"{summary.skipped} already there"
    )
    print(f"input manifest: {summary.manifest}")
    return summary.manifest


def _cmd_start(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.start import check_name, check_run, execution_name, start_run
    from boxloop.steps.run import safe_name

    deployment = _deployment(args)
    overrides = parse_set(args.set)
    base = safe_name(Path(args.images).resolve().name) if args.images else "run"
    name = check_name(args.name) if args.name else execution_name(base)
    if args.images:
        # Settings first: a bad --set fails before minutes of upload.
        deployment.loop_config().with_overrides(overrides)
        manifest = _upload(deployment, Path(args.images))
    else:
        manifest = args.manifest
    checked = check_run(deployment, name=name, manifest=manifest, overrides=overrides)
    _print_checked(checked)
    started = start_run(deployment, checked)
    print(f"started {checked.name}\nexecution: {started.execution_arn}")
    print(f"console:   {started.console_url}")
    print(f"follow it: boxloop aws status {checked.name} --watch")
    return EXIT_OK


def _status(deployment: Deployment, execution: Execution) -> list[str]:
    from boxloop.aws.operate.status import run_status, status_lines

    return status_lines(run_status(execution, labeling_table=deployment.labeling_table))


def _cmd_status(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.executions import describe

    deployment = _deployment(args)
    execution = describe(deployment, args.execution)
    if not args.watch:
        print("\n".join(_status(deployment, execution)))
        return EXIT_OK
    if not sys.stdout.isatty():  # a log: each status that differs from the last, in turn
        shown: tuple[str, list[str]] | None = None
        while True:
            execution = describe(deployment, execution.arn)
            lines = _status(deployment, execution)
            if (execution.status, lines[1:]) != shown:  # line 0 holds the running time
                print(("\n" if shown else "") + "\n".join(lines), flush=True)
                shown = (execution.status, lines[1:])
            if not execution.is_running:
                return EXIT_OK
            time.sleep(args.interval)
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(console=Console(highlight=False), auto_refresh=False) as live:
        while True:
            execution = describe(deployment, execution.arn)
            live.update(Text("\n".join(_status(deployment, execution))), refresh=True)
            if not execution.is_running:
                return EXIT_OK
            time.sleep(args.interval)


def _cmd_report(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.executions import describe
    from boxloop.aws.operate.outputs import write_report

    files = write_report(describe(_deployment(args), args.execution), Path(args.out))
    print(f"report: {files['report_html']} (data: {files['report']})")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.executions import describe
    from boxloop.aws.operate.export import export_manifest, summary_text
    from boxloop.aws.operate.outputs import output_manifest, run_config

    execution = describe(_deployment(args), args.execution)
    manifest = output_manifest(execution)
    config = run_config(execution)
    out = Path(args.out)
    summary = export_manifest(
        manifest,
        args.format,
        out,
        label_attribute=config.label_attribute,
        class_names=config.labels.class_names,
    )
    print(summary_text(args.format, out, summary))
    return EXIT_OK


def _cmd_stop(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.control import stop_run
    from boxloop.aws.operate.executions import describe

    deployment = _deployment(args)
    execution = describe(deployment, args.execution)
    result = stop_run(execution, labeling_table=deployment.labeling_table, wait_s=args.wait)
    if result.execution_stopped:
        print(f"stopped execution {execution.name}")
    else:
        print(f"execution {execution.name} had already ended ({execution.status})")
    if result.labeling_job:
        print(f"labeling job {result.labeling_job}: {result.labeling_status}")
        if result.merged_ledger:
            print(f"its answers are merged into {result.merged_ledger}")
        else:
            print("it left no answers to merge")
    if result.execution_stopped:
        print(f"resume it with: boxloop aws resume {execution.name}")
    return EXIT_OK


def _cmd_resume(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.control import resume_run
    from boxloop.aws.operate.executions import describe

    deployment = _deployment(args)
    checked, started = resume_run(deployment, describe(deployment, args.execution), name=args.name)
    print(f"resuming from {checked.execution_input['ledger']}")
    print(f"started {checked.name}\nexecution: {started.execution_arn}")
    print(f"console:   {started.console_url}")
    return EXIT_OK


def _stack_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        default=DEFAULT_STACK_NAME,
        help=f"the deployed stack's name (default: {DEFAULT_STACK_NAME})",
    )


def register(aws_sub: argparse._SubParsersAction) -> None:
    """Add ``start``, ``status``, ``report``, ``export``, ``stop`` and ``resume``."""
    start = aws_sub.add_parser("start", help="start a run (uploading a folder of images first)")
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="an input manifest already in S3 (s3://...)")
    source.add_argument(
        "--images", help="a local folder of images: uploaded (resumable), manifest written"
    )
    start.add_argument("--name", help="the execution name (default: <folder>-<UTC time>)")
    add_set_option(start)
    start.set_defaults(func=_aws_errors(_cmd_start))

    status = aws_sub.add_parser("status", help="how a run is going (the latest by default)")
    status.add_argument("execution", nargs="?", help="execution name or ARN (default: latest)")
    status.add_argument("--watch", action="store_true", help="refresh in place until it ends")
    status.add_argument(
        "--interval", type=float, default=WATCH_SECONDS, help="seconds between --watch refreshes"
    )
    status.set_defaults(func=_aws_errors(_cmd_status))

    report = aws_sub.add_parser("report", help="a finished run's HTML report")
    report.add_argument("execution", help="execution name or ARN")
    report.add_argument("--out", required=True, help="folder for report.html and report.json")
    report.set_defaults(func=_aws_errors(_cmd_report))

    export = aws_sub.add_parser("export", help="a finished run's labels as COCO, VOC, YOLO, GT")
    export.add_argument("execution", help="execution name or ARN")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", required=True, help="file (coco, groundtruth) or folder")
    export.set_defaults(func=_aws_errors(_cmd_export))

    stop = aws_sub.add_parser("stop", help="stop a run and its labeling job, keeping answers")
    stop.add_argument("execution", help="execution name or ARN")
    stop.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for the labeling job to stop"
    )
    stop.set_defaults(func=_aws_errors(_cmd_stop))

    resume = aws_sub.add_parser("resume", help="continue a stopped or failed run from its ledger")
    resume.add_argument("execution", help="execution name or ARN")
    resume.add_argument("--name", help="the new execution's name (default: <old>-resume-<time>)")
    resume.set_defaults(func=_aws_errors(_cmd_resume))

    for parser in (start, status, report, export, stop, resume):
        _stack_option(parser)
