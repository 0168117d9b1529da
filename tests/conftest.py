"""Shared test settings."""

import os

# app.py would otherwise train every default and preset on a background thread (normviz.warm) while the page
# tests count runs and time them; test_warm.py tests the warming itself. Servers started by the e2e tests
# inherit this, so their first page loads are measured uncached.
os.environ["NORMVIZ_WARM_UP"] = "0"
# The run service (normviz.service) trains on threads of the test process, and keeps nothing on disk between
# test runs; tests of the worker processes and the disk cache make their own RunService.
os.environ.setdefault("NORMVIZ_WORKERS", "0")
os.environ.setdefault("NORMVIZ_CACHE_DIR", "off")
