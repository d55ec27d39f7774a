"""Running a recorded run again: its exact code in a worktree of its own (code), and
`reproduce`, which replays it and compares the outcome (reproduce)."""
