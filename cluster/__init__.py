"""Cluster plumbing: starting or joining Ray, and the evmpp command line."""
