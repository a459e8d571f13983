"""Command-line interfaces: thin layers over the Python API."""
