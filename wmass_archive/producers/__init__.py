"""Producers: code that plays the analysis team and writes archives. Readers never import it."""
