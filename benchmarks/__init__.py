"""plscope's benchmarks: ``python -m benchmarks`` runs the suite (see benchmarks/README.md)."""
