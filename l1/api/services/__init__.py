"""The work behind the controllers: each service owns one resource's rules."""
