"""`python -m sdksign.server` is the `sdksign` command."""

import sys

from sdksign.cli import main

sys.exit(main())
