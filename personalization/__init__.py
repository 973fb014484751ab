"""Personalisation data project tooling."""
