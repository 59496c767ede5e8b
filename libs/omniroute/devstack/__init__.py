"""The local stack: backing services (NATS, Redis, Postgres) and every OmniRoute service as its
own process. Used by `make run` and by the end-to-end tests, so both run the same thing."""
