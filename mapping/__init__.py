"""statten-hw mapping."""
