"""The bandit service: a Litestar app over `policies`, with storage, group commit and a scheduler.

Importing the package does nothing; build the app with `bandit_service.app.create_app`.
"""

__all__: list[str] = []
