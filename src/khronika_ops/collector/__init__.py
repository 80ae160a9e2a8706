"""`khronika collect`: a small sampler of host, container and GPU metrics (see docs/metrics.md)."""
