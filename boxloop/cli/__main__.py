"""``python -m boxloop.cli``: the same as the ``boxloop`` command."""

import sys

from boxloop.cli import main

sys.exit(main())
