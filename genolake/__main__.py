from genolake.cli import main

main()
