from genolake.launch import main

main()
