"""Tools that stand above the simulator: the benchmark suite and the parameter-table generator."""
