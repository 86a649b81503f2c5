"""Data files shipped with the package (the price book)."""
