"""Lava (lava-nc / lava-dl) backend; import lava only through ``_compat``."""
