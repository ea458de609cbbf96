"""Siyu (私域): an SCRM for companies that run their customer relationships inside WeCom."""

__version__ = "0.1.0"
