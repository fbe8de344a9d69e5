"""The rlv2 performance benchmark and its baselines (``python -m bench``, ``make bench``).

Not part of the tests: it prints figures and PASS/MISS markers and never fails on a
slow machine. See ``bench/README.md``.
"""
