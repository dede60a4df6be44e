"""isobench: what does isolation cost? Measured, not folklore."""

__version__ = "0.1.0"
