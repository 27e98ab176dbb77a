"""`python -m sdksign.server` is the `sdksign` command."""

import sys

from sdksign.client._cli import main

sys.exit(main())
