"""Benchmarks of CSR Proxy on the real stack (``make bench``; entry point ``bench/run.py``)."""
