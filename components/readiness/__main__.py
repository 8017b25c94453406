"""``python -m components.readiness``: the waiter's CLI.

The readiness ``Command`` of every deployed stack runs this module path; it stays
``components.readiness`` (not ``.waiter``) so the command line, a property of that
resource, does not change.
"""

from components.readiness.waiter import main

raise SystemExit(main())
