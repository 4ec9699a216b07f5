"""Entry point of the single-file binary (installer/totem-agent.spec): the CLI."""

from totem_agent.cli import entry_point

if __name__ == "__main__":
    entry_point()
