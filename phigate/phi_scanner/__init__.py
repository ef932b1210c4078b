"""MIME to text segments to PHI findings. Only this package imports spaCy."""
