from activeupgrade.cli.main import main

raise SystemExit(main())
