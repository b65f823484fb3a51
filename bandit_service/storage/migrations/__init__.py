"""The Alembic environment and revisions of the SQL schema (run by `bandit_service.storage.schema`)."""
