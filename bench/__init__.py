"""Workload generator and benchmark scripts; results go to bench/results/."""
