"""Commands: every ``fuserec`` command group (``cli.py`` assembles them) and what all commands share."""
