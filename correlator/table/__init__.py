"""The alert table: deduplication, clearing, expiry and deletion of rows."""
