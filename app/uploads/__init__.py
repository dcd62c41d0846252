"""Resumable uploads over the tus 1.0 protocol, for files of gigabytes (migration files)."""
