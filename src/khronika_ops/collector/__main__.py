"""`python -m khronika_ops.collector`: `khronika collect` where typer is not installed (monitoring hosts)."""

from khronika_ops.collector.service import main

raise SystemExit(main())
