"""Sub-commands of the `molenv` command line (see molenv.cli)."""
