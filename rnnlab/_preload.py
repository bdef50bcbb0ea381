"""Imported once by the job manager's fork server, so that forked workers start warm."""

from .worker import preload

preload()
