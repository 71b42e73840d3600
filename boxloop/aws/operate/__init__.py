"""Operate a deployed boxloop stack from the terminal: start, watch, report, export, stop, resume.

Each module does one job over the stack's outputs (``boxloop.aws.stack_outputs``) and the
files a run writes under ``runs/<run id>/``; ``boxloop/cli/aws_run.py`` is the thin command
line over them. Nothing here keeps state of its own: the execution history and the run's S3
files are the truth, so two terminals (or a terminal and the console) never disagree.
"""
