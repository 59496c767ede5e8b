"""Choosing targets: model resolution, policies, plans and strategies, accounts and what their
outcomes teach."""
