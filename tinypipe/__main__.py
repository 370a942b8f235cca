from tinypipe.cli import entry

entry()
