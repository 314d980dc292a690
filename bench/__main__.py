"""``python -m bench``: Mailroom and mesh-sandbox side by side (see bench/run.py)."""

from bench.run import main

main()
