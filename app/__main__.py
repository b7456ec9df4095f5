import sys

from .cli import main

if __name__ == "__main__":  # spawned processes (Dask workers) import this module too: they must not rerun the CLI
    sys.exit(main())
