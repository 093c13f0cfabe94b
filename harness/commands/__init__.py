"""The harness's subcommands of ``cabinwatch``: each exposes ``configure(parser)``."""
