"""Who is calling and what they may do: API keys (`keys`), the studio's and forms' login (`web`), and the server's
master key with the secrets derived from it (`secrets`)."""
