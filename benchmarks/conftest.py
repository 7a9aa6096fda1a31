"""Benchmarks run with pytest-benchmark: ``python -m pytest benchmarks -q``.

They are not part of the test suite (``testpaths = tests``). Each benchmark records its
work size in ``extra_info`` so rates (updates/s, agent-steps/s) can be derived.
"""
