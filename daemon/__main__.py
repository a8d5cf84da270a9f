"""`python -m daemon` is `loacam`."""

import sys

from daemon.cli import main

sys.exit(main())
