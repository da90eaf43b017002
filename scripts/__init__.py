"""The repository's command-line tools (synth summary, offline diff, fuzz, benchmarks). Each runs from the repository
root as a module, ``python -m scripts.NAME`` (the Makefile's targets do), so it imports the project's packages
(infra, functions, model, tests) the way the tests do, without changing sys.path."""
