def register(commands) -> None:
    """Adds this module's `collab-demo` subcommands (filled in by its pattern's work)."""
