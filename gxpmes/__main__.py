"""``python -m gxpmes``: the same as the ``gxpmes`` command."""

import sys

from gxpmes.cli import main

sys.exit(main())
