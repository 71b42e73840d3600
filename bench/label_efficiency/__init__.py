"""Label-efficiency benchmark: selection strategies and auto-label policies on the local engine."""
