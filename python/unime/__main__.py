"""`python -m unime ...`: the command line (unime/cli.py)."""

import sys

from .cli import main

sys.exit(main())
