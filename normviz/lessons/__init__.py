"""Teaching material, one module per view: the prose a page says around its charts (introductions, each
chart's title and caption, formulas). Numbers in it are formatted from the code's constants or a run's
result, and tests/test_claims.py checks every other number. Moved here so far: train_vs_inference,
running_stats and alternatives; the other views' prose is still in their experiment modules and pages."""
