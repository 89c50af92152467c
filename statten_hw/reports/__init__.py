"""statten-hw reports."""
