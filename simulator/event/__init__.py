"""statten-hw simulator/event."""
