"""Sign and Verify as pure functions: from a request, the configuration, the caller and
the clock to a token, or to the diagnosis of one.

mint: a SignRequest to a signed token; diagnose: a VerifyRequest to every problem of a
token (a package, a module for each step: its docstring gives the order); signature:
which secret, if any, signed it; wrapped: tokens pasted inside JSON, headers or URLs;
sample: the JSON body of Zoom's sample auth endpoint read into a SignRequest, and its
answers written in that sample's shapes.

Knows nothing of gRPC (it reads the request messages, not the transport). May import
zoom, errors, access and config.
"""
