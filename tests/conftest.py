"""Shared test settings."""

import os

# app.py would otherwise train every default and preset on a background thread (normviz.warm) while the page
# tests count runs and time them; test_warm.py tests the warming itself. Servers started by the e2e tests
# inherit this, so their first page loads are measured uncached.
os.environ["NORMVIZ_WARM_UP"] = "0"
