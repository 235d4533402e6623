"""The ``pulse`` command line: a thin layer over the packages below it.

Owns: ``main.py`` argument parsing and dispatch for every command;
``worker.py`` ``pulse worker``'s process (instance id, topics, the runtime
loop and the profile API it serves, restarts); ``deliver.py`` the
``pulse deliver`` commands.

May import: everything. Nothing imports the CLI (the console script
``pulse = pipeline.cli:main`` is its only caller).
"""

from pipeline.cli.main import main

__all__ = ["main"]
