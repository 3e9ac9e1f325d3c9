"""xlt: zero-shot cross-lingual transfer harness for multilingual encoders."""

__version__ = "0.1.0"
