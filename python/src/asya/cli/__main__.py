from asya.cli import main

main()
