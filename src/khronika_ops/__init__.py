"""khronika-ops: the operations toolkit for the Khronika platform."""

__version__ = "0.1.0"
