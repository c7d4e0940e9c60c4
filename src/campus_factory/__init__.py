"""campus-factory: grow an HTCondor pool onto idle clusters and clouds, on demand."""

__all__ = ["__version__"]
__version__ = "0.1.0"
