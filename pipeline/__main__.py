"""``python -m pipeline``: the project's CLI."""

import sys

from pipeline.cli import main

sys.exit(main())
