"""Tests of the operations package: each formulation against XLA's reference and float64, the
dispatcher, the oneDNN loader, and the import boundary between the networks and the ops."""
