from lpcnet.bench.cli import main

raise SystemExit(main())
