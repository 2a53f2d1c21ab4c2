"""The Piccolo tables by domain; ``shared.db.tables.TABLES`` lists them all for the app config."""
