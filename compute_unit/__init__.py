"""Compute Units: the state view, py-evm execution of groups, Block-STM validation, Ray workers."""
