from aetk_runtime.cli import main

main()
