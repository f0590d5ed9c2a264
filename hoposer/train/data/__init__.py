"""Datasets: HO-3D from its raw release, and synthetic data in the same layout."""
