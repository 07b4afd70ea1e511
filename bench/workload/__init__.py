"""Synthetic workload: Vyper contracts, a funded genesis, and seeded blocks with a Zipf dial."""
