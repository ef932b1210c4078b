"""The Textual admin interface. Nothing outside this package imports textual."""
