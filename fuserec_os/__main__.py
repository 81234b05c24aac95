"""``python -m fuserec_os``: the same CLI as the ``fuserec`` console script."""

from fuserec_os.cli import main

main()
