"""Sharing runs between repositories: `push` and `pull` through git remotes (remote), and
bundles, one file that carries runs, code and data across an air gap (bundle)."""
