from mirror.daemon.cli import main

raise SystemExit(main())
