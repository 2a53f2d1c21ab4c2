"""The Piccolo tables by domain; ``shared.infra.db.tables.TABLES`` lists them all for the app config."""
