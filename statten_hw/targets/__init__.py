"""statten-hw targets."""
