"""On-device latency: timing tiers and statistics, runtimes, the accuracy gate, inputs and records."""
