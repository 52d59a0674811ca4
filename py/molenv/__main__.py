from molenv.cli import main

main()
