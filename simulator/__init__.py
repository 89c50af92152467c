"""Simulation backends for statten-hw (event-driven and Lava)."""
