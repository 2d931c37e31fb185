from rrambnn.entry import main

main()
