"""``python -m l1``: the same as the ``l1`` command."""

from l1.cli import main

main()
