"""pipelines: orchestration (Ray jobs, DVC stage entry points, the `space` CLI)."""
