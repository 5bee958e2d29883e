"""The process: the supervisor that owns long-running tasks, systemd's notify protocol, the state-directory
lock, running as the state directory's owner, and logging with secrets masked. Imports nothing of the
project outside this package.
"""
