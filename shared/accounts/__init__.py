"""People's accounts: sign-up and sign-in, sessions, API keys and their policy, promo codes, deletion."""

# What an account may do: ``support`` staff answer tickets, an ``admin`` also runs the admin API.
ROLES = ("user", "support", "admin")
