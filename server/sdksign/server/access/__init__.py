"""Who may call, and what: callers, their rules (policy), and rate limits.

policy: callers, rules and the checks that refuse a request (PERMISSION_DENIED,
UNAUTHENTICATED); ratelimit: the limiter a configuration asks for, the worker's own or a
store's; buckets: token buckets kept in the worker; ratestore: the same buckets kept in
Redis for a fleet.

May import zoom, errors and observe (to count a store's errors); never gRPC.
"""
