"""`python3 -m sealcard ...`: the same as the installed `sealcard` executable."""

from sealcard.cli.main import main

main()
