"""Recipes that build the shipped model zoo (plain PyTorch, no Ray): data, training, export."""
