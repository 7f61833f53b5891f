"""The package version, recorded in LangChain trace metadata."""

__version__ = "0.1.0"
