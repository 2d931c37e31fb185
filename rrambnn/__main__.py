from rrambnn.cli import main

main()
