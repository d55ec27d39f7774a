"""Runs in code review: `gitexp report` (Markdown for a pull request), `gitexp publish`
(copies of records on a code branch) and the verification of published copies."""
