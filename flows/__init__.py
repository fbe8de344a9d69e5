"""Prefect flows that orchestrate rlv2: nightly retraining, sweeps, promotion."""
