"""`python -m sdksign.server` is the `sdksign` command."""

import sys

from ._cli import main

sys.exit(main())
