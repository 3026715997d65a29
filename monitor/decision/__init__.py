"""Pure decision logic: who goes first and how much to free. No I/O here."""
