"""Settings shared by every test run in this repository (root and per-package runs alike)."""

from hypothesis import settings

# No wall-clock limits in tests: hypothesis' default 200 ms deadline per example turned into
# failures on a loaded 2-core CI machine (seen on test_codec's JSON round trip). Speed is
# measured in benchmarks/, side by side, never asserted here.
settings.register_profile("deepagents-redis", deadline=None)
settings.load_profile("deepagents-redis")
