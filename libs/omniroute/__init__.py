"""OmniRoute shared libraries. Services are thin layers over these packages."""

__version__ = "0.1.0"
