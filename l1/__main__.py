"""``python -m l1``: the same as the ``l1`` command."""

from l1.cli import main

# Render processes start from a fork server that imports the parent's main module
# under another name: only the real main runs the command line.
if __name__ == "__main__":
    main()
