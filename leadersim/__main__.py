"""``python -m leadersim``: the command line (see :mod:`leadersim.cli`)."""

from leadersim.cli import main

raise SystemExit(main())
