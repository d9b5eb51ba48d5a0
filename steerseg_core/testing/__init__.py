"""Builders of test and demo fixtures: tiny random-weight backbones (every family), a tiny SAM2,
synthetic moving-shape clips. Library code never imports this package; tests, benchmarks and the
``make-tiny-models`` / ``make-synthetic`` commands do."""
