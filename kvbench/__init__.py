"""kvbench: measure prefill against KV-cache reuse, end to end."""

__version__ = "0.1.0"
