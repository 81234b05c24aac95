"""``fuserec`` subcommand groups that live outside cli.py, plus what all commands share."""
