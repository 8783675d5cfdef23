"""`python -m vdpa_operator.cli`: vdpactl without its console script."""

from vdpa_operator.cli import main

main(prog_name="vdpactl")
