#!/usr/bin/env python3
"""CDK entry point: read the context once, build the one boxloop stack, check it with cdk-nag."""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from boxloop.core.errors import ConfigError
from stacks.boxloop_stack import BoxloopStack
from stacks.config import BoxloopConfig


def main(app: cdk.App | None = None) -> None:
    """Synthesize; a bad context prints every problem at once and exits 2, without a traceback.

    Args:
        app: the App to build into (tests pass one with their context); default: a new App,
            which reads the context the CDK CLI passes.
    """
    app = app or cdk.App()
    try:
        config = BoxloopConfig.from_context(app.node.get_all_context(), environ=os.environ)
        BoxloopStack(app, "Boxloop", config=config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
