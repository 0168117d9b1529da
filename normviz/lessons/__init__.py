"""Teaching material, one module per view (normviz/lessons/<view>.py, read by normviz.views): the prose a page
says around its charts (introductions, each chart's title and caption, what to notice, formulas, the words a
run's numbers fill in), the charts it draws (`panels`), its presets (`PRESETS`: the settings each changes and
what to notice) and its "Reproduce in PyTorch" snippets. Numbers in it are formatted from the code's constants or
a run's result, and tests/test_claims.py checks every other number."""
