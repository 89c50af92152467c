"""statten-hw export."""
