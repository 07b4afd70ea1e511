"""Elastic block space: subscriptions and per-dApp gas limits (see DESIGN.md; not built yet)."""
