"""Code shared by several analyzers (model runners, text helpers); no analyzer lives here, so the registry
skips this package."""
