"""`python -m flows.cli` is `pmf`."""

import sys

from flows.cli import main

sys.exit(main())
