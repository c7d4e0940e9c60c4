"""Running external commands: argument lists, mandatory timeouts, nothing lost on failure."""

from .executor import CommandResult, Executor, LocalExecutor

__all__ = ["CommandResult", "Executor", "LocalExecutor"]
