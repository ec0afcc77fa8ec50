"""``python -m tests.claim_breakers``: see :mod:`tests.claim_breakers.run`."""
from tests.claim_breakers.run import main

raise SystemExit(main())
