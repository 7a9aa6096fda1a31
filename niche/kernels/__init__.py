"""Numba kernels (pure array functions) used by the niche simulator."""
