"""`python -m bandit_service.cli`: the same as the `bandit-service` command."""

from bandit_service.cli.main import main

raise SystemExit(main())
