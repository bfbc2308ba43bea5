from flexvoice.cli import main

raise SystemExit(main())
