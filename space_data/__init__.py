"""space_data: turn talking-head video corpora into frame-aligned feature records (no Ray here)."""
