"""Benchmarks of this FuseMap against the methods users would pick instead (see README.md here)."""
