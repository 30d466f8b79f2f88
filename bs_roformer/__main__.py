"""`python -m bs_roformer ...`: the command line."""

from .cli import main

raise SystemExit(main())
