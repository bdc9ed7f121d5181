from aetk.cli import main

main()
