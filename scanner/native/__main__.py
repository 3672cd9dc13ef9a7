"""``python -m scanner.native``: build the compiled modules (``make native``)."""

from scanner.native.build import main

main()
