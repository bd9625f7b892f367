"""`python -m engine.demo` (what `make demo` runs)."""

from engine.demo.run import main

main()
