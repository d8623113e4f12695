"""Print the CLI reference page: ``python -m deepagents_redis.cli.reference > docs/cli.md``."""

from deepagents_redis.cli._app import reference

if __name__ == "__main__":
    print(reference(), end="")
